"""The state-sync core's own messages beyond the lead's interface
(``_messages``): what the ``StateSync`` service asks of a ``DocumentActor``
(locks, statistics, named snapshots, history, deletion), and the events and
snapshot state a document persists. All registered under stable names, so
they cross nodes and stay readable in the store."""

import re

import msgspec

import trouper

#: A document id (and a named snapshot's name): 1 to 128 of these characters.
DOC_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def check_doc_id(doc: object) -> str:
    """``doc`` if it is a well-formed document id, else ``InvalidArgument``."""
    if not isinstance(doc, str) or DOC_ID.fullmatch(doc) is None:
        shown = repr(doc)[:80] if isinstance(doc, str) else type(doc).__name__
        raise trouper.InvalidArgument(f"bad document id {shown}: 1 to 128 of A-Z a-z 0-9 . _ -")
    return doc


# ------------------------------------------------------------ requests


@trouper.message(name="collab-sync:AcquireLock")
class AcquireLock(msgspec.Struct, frozen=True):
    scope: str
    session_id: str
    ttl: float


@trouper.message(name="collab-sync:RenewLock")
class RenewLock(msgspec.Struct, frozen=True):
    scope: str
    session_id: str
    token: int
    ttl: float


@trouper.message(name="collab-sync:ReleaseLock")
class ReleaseLock(msgspec.Struct, frozen=True):
    """Answered True if the lease was held (by ``session_id``; with a token,
    only if it is that lease) and is now released."""

    scope: str
    session_id: str
    token: int | None = None


@trouper.message(name="collab-sync:LockLease")
class LockLease(msgspec.Struct, frozen=True):
    scope: str
    token: int
    expires_in: float  # seconds


@trouper.message(name="collab-sync:GetStats")
class GetStats(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab-sync:DocStats")
class DocStats(msgspec.Struct, frozen=True):
    doc: str
    editors: int  # live awareness states (one per page)
    subscribers: int  # Subscribe streams (one per node hub)
    updates_per_second: float  # over the last RATE_WINDOW seconds
    size: int  # bytes of the encoded state
    version: int  # the last persisted sequence number
    locks: int  # live leases
    node: str = ""  # the id of the node the document runs on (where to look after a failover)


@trouper.message(name="collab-sync:SaveSnapshot")
class SaveSnapshot(msgspec.Struct, frozen=True):
    name: str


@trouper.message(name="collab-sync:ListSnapshots")
class ListSnapshots(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab-sync:RestoreSnapshot")
class RestoreSnapshot(msgspec.Struct, frozen=True):
    """Answered with the version of the update that restored it."""

    name: str


@trouper.message(name="collab-sync:SnapshotInfo")
class SnapshotInfo(msgspec.Struct, frozen=True):
    name: str
    version: int
    time: float  # wall clock, seconds since the epoch
    size: int


@trouper.message(name="collab-sync:SnapshotList")
class SnapshotList(msgspec.Struct, frozen=True):
    """The answer to ``ListSnapshots``, oldest first. (Replies are Structs at
    the top: a list of Structs would reach another node as plain dicts.)"""

    snapshots: list[SnapshotInfo]


@trouper.message(name="collab-sync:OperationsSince")
class OperationsSince(msgspec.Struct, frozen=True):
    """Answered with ``Operations``: the updates of the log after
    ``version``, oldest first."""

    version: int
    limit: int = 1000


@trouper.message(name="collab-sync:Operation")
class Operation(msgspec.Struct, frozen=True, array_like=True):
    version: int
    update: bytes  # the Yjs update as its client sent it


@trouper.message(name="collab-sync:Operations")
class Operations(msgspec.Struct, frozen=True):
    operations: list[Operation]


@trouper.message(name="collab-sync:DeleteDocument")
class DeleteDocument(msgspec.Struct, frozen=True):
    """Empty the document (a persisted reset) and stop its actor."""


@trouper.message(name="collab-sync:Passivate")
class Passivate(msgspec.Struct, frozen=True):
    """Passivate now, whatever the idle time (tests, and a node draining)."""


@trouper.message(name="collab-sync:CountHosted")
class CountHosted(msgspec.Struct, frozen=True):
    """To a directory: how many documents its node runs now (an int)."""


# ------------------------------------------------------------ persisted


@trouper.message(name="collab-sync:Updated")
class Updated(msgspec.Struct, frozen=True):
    """One Yjs update, as a client sent it."""

    update: bytes


@trouper.message(name="collab-sync:LockGranted")
class LockGranted(msgspec.Struct, frozen=True):
    """A lease granted (a new token) or renewed (the same token)."""

    scope: str
    session_id: str
    token: int
    expires_at: float  # wall clock


@trouper.message(name="collab-sync:LockReleased")
class LockReleased(msgspec.Struct, frozen=True):
    scope: str
    token: int


@trouper.message(name="collab-sync:DocReset")
class DocReset(msgspec.Struct, frozen=True):
    """The document was deleted: what came before is gone."""


@trouper.message(name="collab-sync:DocState")
class DocState(msgspec.Struct, frozen=True):
    """A snapshot: the whole Yjs state (never text) and the lock table."""

    update: bytes
    locks: list[LockGranted]
    last_token: int


@trouper.message(name="collab-sync:NamedSnapshot")
class NamedSnapshot(msgspec.Struct, frozen=True):
    info: SnapshotInfo
    update: bytes  # the full Yjs state when it was saved
