"""The envelopes: every message two nodes exchange, as one tagged union.

Each envelope is a frozen msgspec Struct encoded as a msgpack *array* whose
first element is a small integer tag (``array_like=True``), so a ``Tell``
costs a few bytes of overhead instead of a map with field names. Fields are
only ever appended, with defaults, so an older peer decoding a newer envelope
ignores the trailing extras (msgspec skips unknown trailing array items).

User payloads travel as ``type_name`` + ``payload: msgspec.Raw``: the frame
decoder never looks inside them, and the payload codec later decodes them only
into types registered under that name (two-stage decoding).

Correlation ids are chosen by the side that starts an exchange and are
unambiguous per direction: ``Ask.id`` and ``Spawn.id`` share one namespace (a
``Failure`` may answer either), and a stream's frames are routed by who sends
them (``StreamItem``/``StreamEnd`` flow from the producer, ``StreamCredit``/
``StreamCancel`` from the consumer that sent ``StreamOpen``), so both nodes may
open streams with the same id on one connection without clashing.

Structs are declared ``gc=False``: they hold only immutable scalars, strings,
bytes, Raw and other such structs (plus lists/dicts built by the decoder), so
they cannot form reference cycles and the garbage collector need not track
the many envelopes a busy link allocates.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from ._service_envelopes import (
    MAX_TOPIC_LENGTH,
    ChannelCredit,
    ChannelDone,
    ChannelEnd,
    ChannelItem,
    ChannelOpen,
    GroupUpdate,
    Interest,
    Publish,
)
from ._wire_types import U64, Credits, ErrorDetail, Member, NodeId, Nonce, Proof, WireRef
from ._wire_types import EnvelopeBase as _Envelope

__all__ = [
    "ENVELOPE_TYPES",
    "MAX_TOPIC_LENGTH",
    "Ask",
    "Challenge",
    "ChannelCredit",
    "ChannelDone",
    "ChannelEnd",
    "ChannelItem",
    "ChannelOpen",
    "Credit",
    "Envelope",
    "ErrorDetail",
    "Failure",
    "Goodbye",
    "Gossip",
    "GroupUpdate",
    "Heartbeat",
    "Hello",
    "Interest",
    "Member",
    "Publish",
    "RegistryUpdate",
    "Reply",
    "Spawn",
    "SpawnResult",
    "Stop",
    "StreamCancel",
    "StreamCredit",
    "StreamEnd",
    "StreamItem",
    "StreamOpen",
    "Tell",
    "Terminated",
    "Unwatch",
    "Watch",
    "Welcome",
    "WireRef",
]

# -- handshake ---------------------------------------------------------------


class Hello(_Envelope, tag=1, frozen=True, array_like=True, gc=False):
    """Initiator → acceptor: who I am and my nonce; ``max_frame``, the largest
    frame I accept (0: not said), so that the other side never sends one
    larger even if its own limit is higher."""

    version: U64
    node: NodeId
    incarnation: U64
    nonce: Nonce
    max_frame: U64 = 0


class Challenge(_Envelope, tag=2, frozen=True, array_like=True, gc=False):
    """Acceptor → initiator: who I am, my nonce (the challenge), and the
    largest frame I accept (``max_frame``, 0: not said)."""

    version: U64
    node: NodeId
    incarnation: U64
    nonce: Nonce
    max_frame: U64 = 0


class Welcome(_Envelope, tag=3, frozen=True, array_like=True, gc=False):
    """Either way: the sender's HMAC proof that it knows the shared cookie."""

    proof: Proof


# -- messaging ---------------------------------------------------------------


class Tell(_Envelope, tag=10, frozen=True, array_like=True, gc=False):
    target: WireRef
    type_name: str
    payload: msgspec.Raw
    sender: WireRef | None = None
    trace: str | None = None  # W3C traceparent, when the sender traces


class Ask(_Envelope, tag=11, frozen=True, array_like=True, gc=False):
    """A request; ``timeout`` (seconds, relative) lets the target drop it once
    nobody waits for the answer any more."""

    id: U64
    target: WireRef
    type_name: str
    payload: msgspec.Raw
    sender: WireRef | None = None
    timeout: float | None = None
    trace: str | None = None  # W3C traceparent, when the sender traces


class Reply(_Envelope, tag=12, frozen=True, array_like=True, gc=False):
    id: U64
    type_name: str
    payload: msgspec.Raw


class Failure(_Envelope, tag=13, frozen=True, array_like=True, gc=False):
    """The boxed exception answering an ``Ask`` or a ``Spawn``."""

    id: U64
    type_name: str
    message: str
    traceback: str = ""
    node: str = ""
    path: str = ""
    error_code: str = "remote"
    retryable: bool = False


class Watch(_Envelope, tag=14, frozen=True, array_like=True, gc=False):
    watcher: WireRef
    target: WireRef


class Unwatch(_Envelope, tag=15, frozen=True, array_like=True, gc=False):
    watcher: WireRef
    target: WireRef


class Terminated(_Envelope, tag=16, frozen=True, array_like=True, gc=False):
    """``target`` stopped; the receiving node notifies its own watchers."""

    target: WireRef
    reason: str


class Credit(_Envelope, tag=17, frozen=True, array_like=True, gc=False):
    """Target's node → sender's node: ``n`` more ``Tell`` s to ``target`` may
    be sent. Per-destination credit: a slow actor's mailbox never makes the
    link's reader wait, so heartbeats and replies are never stuck behind it."""

    target: WireRef
    n: Credits


# -- streams -----------------------------------------------------------------


class StreamOpen(_Envelope, tag=20, frozen=True, array_like=True, gc=False):
    """Start a stream, granting the producer ``credit`` items up front."""

    id: U64
    target: WireRef
    type_name: str
    payload: msgspec.Raw
    credit: Credits
    sender: WireRef | None = None
    trace: str | None = None  # W3C traceparent, when the sender traces


class StreamItem(_Envelope, tag=21, frozen=True, array_like=True, gc=False):
    id: U64
    type_name: str
    payload: msgspec.Raw


class StreamCredit(_Envelope, tag=22, frozen=True, array_like=True, gc=False):
    id: U64
    n: Credits


class StreamEnd(_Envelope, tag=23, frozen=True, array_like=True, gc=False):
    """The producer is done; ``error`` is set when it failed."""

    id: U64
    error: ErrorDetail | None = None


class StreamCancel(_Envelope, tag=24, frozen=True, array_like=True, gc=False):
    id: U64
    reason: str = ""


# -- remote spawn ------------------------------------------------------------


class Spawn(_Envelope, tag=30, frozen=True, array_like=True, gc=False):
    """Start ``class_path`` ("module:Class") on the receiving node.

    ``args`` is the runtime's encoding of the constructor arguments; a refusal
    comes back as a ``Failure`` with the same ``id``.
    """

    id: U64
    class_path: str
    args: msgspec.Raw
    name: str | None = None
    mailbox_size: U64 | None = None


class Stop(_Envelope, tag=32, frozen=True, array_like=True, gc=False):
    """Stop (``kill=False``: children first, ``on_stop`` runs) or kill an actor
    of the receiving node; answered by a ``Reply`` or a ``Failure``."""

    id: U64
    target: WireRef
    kill: bool = False


class SpawnResult(_Envelope, tag=31, frozen=True, array_like=True, gc=False):
    id: U64
    ref: WireRef


# -- cluster -----------------------------------------------------------------


class Heartbeat(_Envelope, tag=40, frozen=True, array_like=True, gc=False):
    """``sent_at`` is the sender's clock, as given by its caller."""

    seq: U64
    sent_at: float


class Gossip(_Envelope, tag=41, frozen=True, array_like=True, gc=False):
    members: list[Member]


class RegistryUpdate(_Envelope, tag=42, frozen=True, array_like=True, gc=False):
    """Name bindings owned by ``node``; with ``snapshot`` the entries replace
    everything previously known from that node instead of patching it."""

    node: NodeId
    added: dict[str, WireRef]
    removed: dict[str, WireRef]
    snapshot: bool = False


class Goodbye(_Envelope, tag=99, frozen=True, array_like=True, gc=False):
    """The sender is closing the connection; ``code`` is an ``error_code``
    when it closes because of an error."""

    reason: str
    code: str = ""


Envelope: TypeAlias = (
    Hello
    | Challenge
    | Welcome
    | Tell
    | Ask
    | Reply
    | Failure
    | Watch
    | Unwatch
    | Terminated
    | Credit
    | StreamOpen
    | StreamItem
    | StreamCredit
    | StreamEnd
    | StreamCancel
    | ChannelOpen
    | ChannelItem
    | ChannelCredit
    | ChannelEnd
    | ChannelDone
    | Spawn
    | SpawnResult
    | Stop
    | Heartbeat
    | Gossip
    | RegistryUpdate
    | GroupUpdate
    | Interest
    | Publish
    | Goodbye
)

#: Every concrete envelope class, for cheap ``type(x) in ENVELOPE_TYPES`` checks.
ENVELOPE_TYPES: frozenset[type] = frozenset(_Envelope.__subclasses__())
