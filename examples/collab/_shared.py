"""What the session service and the state-sync service share: the cluster
event a session's end publishes (``SESSION_EVENTS``), which releases the
locks that session held wherever they live."""

import msgspec

import trouper

#: The cluster-wide topic on which a session's end is published.
SESSION_EVENTS = "collab.sessions"


@trouper.message(name="collab:SessionEnded")
class SessionEnded(msgspec.Struct, frozen=True):
    """A session ended: ``reason`` is "expired" (no heartbeat within its TTL)
    or "deleted" (``delete`` was called)."""

    session_id: str
    user: str
    reason: str
