"""The state-sync service: documents, operations, locks, statistics, subscriptions.

``spawn_state_sync(node)`` starts a node's ``DocumentDirectory`` (named
``DIRECTORY_NAME``) and its ``StateSync`` service member; the WebSocket edge
talks to the directory and to each ``DocumentActor`` with the messages of
``_messages``. docs/collab-sync.md is the guide.
"""

from ._directory import DocumentDirectory as DocumentDirectory
from ._document import DocumentActor as DocumentActor
from ._http import add_document_routes as add_document_routes
from ._messages import DIRECTORY_NAME as DIRECTORY_NAME
from ._service import DocumentInfo as DocumentInfo
from ._service import StateSync as StateSync
from ._service import spawn_state_sync as spawn_state_sync

__all__ = [
    "DIRECTORY_NAME",
    "DocumentActor",
    "DocumentDirectory",
    "DocumentInfo",
    "StateSync",
    "add_document_routes",
    "spawn_state_sync",
]
