"""The messages of the state-sync core: what the WebSocket edge, the
per-node hubs and the ``StateSync`` service send to the node's document
directory (``collab-docs``) and to a ``DocumentActor``.

Yjs payloads travel as the raw bytes of the Yjs encoding (v1 updates, state
vectors, awareness updates), never as text.
"""

from typing import Literal

import msgspec

import trouper

#: The name of each node's ``DocumentDirectory``.
DIRECTORY_NAME = "collab-docs"


@trouper.message(name="collab:OpenDocument")
class OpenDocument(msgspec.Struct, frozen=True):
    """To a node's directory: the ``DocumentActor`` of ``doc``, wherever it
    runs in the cluster, created (on this node, from the store) if nobody
    runs it. Replies with its ``ActorRef``. A malformed id raises
    ``trouper.InvalidArgument``; with ``create=False`` an unknown document
    raises ``trouper.ActorNotFound``."""

    doc: str
    create: bool = True


@trouper.message(name="collab:LockFence")
class LockFence(msgspec.Struct, frozen=True):
    """The lease a write claims to hold: refused unless ``token`` is the
    current token of the lock on ``scope`` ("*" for the whole document, or a
    named range)."""

    scope: str
    token: int


@trouper.message(name="collab:SyncRequest")
class SyncRequest(msgspec.Struct, frozen=True):
    """A Yjs SyncStep1 from a client: its state vector."""

    state_vector: bytes


@trouper.message(name="collab:SyncReply")
class SyncReply(msgspec.Struct, frozen=True):
    """What the client lacks (the SyncStep2 payload) and the document's own
    state vector (for the SyncStep1 the server sends back)."""

    update: bytes
    state_vector: bytes
    version: int


@trouper.message(name="collab:ApplyUpdate")
class ApplyUpdate(msgspec.Struct, frozen=True):
    """A Yjs update from ``origin`` (a connection id). Answered with
    ``Applied`` once the update is in the store: that is the acknowledgement.
    Subscribers get it with ``origin`` so a hub need not echo it back."""

    update: bytes
    origin: str
    fence: LockFence | None = None


@trouper.message(name="collab:Applied")
class Applied(msgspec.Struct, frozen=True):
    version: int


@trouper.message(name="collab:ApplyAwareness")
class ApplyAwareness(msgspec.Struct, frozen=True):
    """A Yjs awareness update from ``origin`` (tell; not persisted)."""

    update: bytes
    origin: str


@trouper.message(name="collab:DropOrigin")
class DropOrigin(msgspec.Struct, frozen=True):
    """``origin`` left: its awareness states are removed, and the removal is
    sent to every subscriber (tell)."""

    origin: str


@trouper.message(name="collab:Subscribe")
class Subscribe(msgspec.Struct, frozen=True):
    """A stream handler of the ``DocumentActor``: yields ``DocEvent``s. The
    first is always a "resync". Each subscriber has a bounded queue of
    ``queue`` events: a slow one gets updates merged into one, and one too
    far behind gets a single "resync" instead of the backlog."""

    subscriber: str
    queue: int = 256


@trouper.message(name="collab:DocEvent")
class DocEvent(msgspec.Struct, frozen=True):
    """``kind``: "update" (``data`` a Yjs update), "awareness" (``data`` an
    awareness update) or "resync" (``data`` the full state as one update,
    ``state_vector`` the document's)."""

    kind: Literal["update", "awareness", "resync"]
    data: bytes
    origin: str
    version: int
    state_vector: bytes = b""


@trouper.message(name="collab:JoinState")
class JoinState(msgspec.Struct, frozen=True):
    """For a connection that just joined: replies with ``Joined``."""


@trouper.message(name="collab:Joined")
class Joined(msgspec.Struct, frozen=True):
    """The document's state vector (the server's SyncStep1 on connect) and
    one awareness update holding every known state (b"" when there is none)."""

    state_vector: bytes
    awareness: bytes


@trouper.message(name="collab:GetAwareness")
class GetAwareness(msgspec.Struct, frozen=True):
    """Replies with one awareness update (bytes) holding every known state,
    for a client that just joined (or sent a Yjs query-awareness message)."""
