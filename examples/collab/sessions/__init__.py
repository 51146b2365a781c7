"""The session service: one ``Session`` actor per session, with TTL and heartbeats.

- ``spawn_session_service(node, store_url=..., default_ttl=30.0)`` starts a
  node's ``SessionService`` (service group ``collab.sessions``); call it
  through ``node.proxy(SessionService)``: ``create``, ``get``, ``update``,
  ``delete``, ``list``, ``heartbeat``.
- ``add_session_routes(routes, node)`` serves the same API as HTTP JSON.
- Stores: ``redis://`` keeps AetherFlow's key layout; ``sqlite:///`` (the
  default) and ``memory://`` go through trouper's store interface.

A session's end is published cluster-wide as ``examples.collab._shared.
SessionEnded`` on ``SESSION_EVENTS``. An unknown or expired session is
``SessionNotFound`` (a non-retryable ``trouper.ActorNotFound``).
``python -m examples.collab.sessions.bench [STORE_URL]`` measures a node's
calls per second. See docs/collab-sessions.md.
"""

from ._record import MAX_DATA_BYTES as MAX_DATA_BYTES
from ._record import MAX_DATA_KEY_CHARS as MAX_DATA_KEY_CHARS
from ._record import MAX_DATA_KEYS as MAX_DATA_KEYS
from ._record import MAX_LIST_LIMIT as MAX_LIST_LIMIT
from ._record import MAX_NAME_CHARS as MAX_NAME_CHARS
from ._record import MAX_SESSIONS_PER_NODE as MAX_SESSIONS_PER_NODE
from ._record import MAX_SESSIONS_PER_USER as MAX_SESSIONS_PER_USER
from ._record import MAX_TTL as MAX_TTL
from ._record import MIN_TTL as MIN_TTL
from ._record import SessionLimits as SessionLimits
from ._record import SessionNotFound as SessionNotFound
from ._record import SessionRecord as SessionRecord
from ._routes import add_session_routes as add_session_routes
from ._service import SERVICE_NAME as SERVICE_NAME
from ._service import Opened as Opened
from ._service import SessionService as SessionService
from ._service import spawn_session_service as spawn_session_service
from ._session import Session as Session
from ._store import SessionStore as SessionStore

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_DATA_KEYS",
    "MAX_DATA_KEY_CHARS",
    "MAX_LIST_LIMIT",
    "MAX_NAME_CHARS",
    "MAX_SESSIONS_PER_NODE",
    "MAX_SESSIONS_PER_USER",
    "MAX_TTL",
    "MIN_TTL",
    "SERVICE_NAME",
    "Opened",
    "Session",
    "SessionLimits",
    "SessionNotFound",
    "SessionRecord",
    "SessionService",
    "SessionStore",
    "add_session_routes",
    "spawn_session_service",
]
