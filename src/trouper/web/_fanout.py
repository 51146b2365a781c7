"""One frame to many WebSocket sessions: the broadcast fast lane.

A broadcast (a chat room, a shared document) sends the same frame to hundreds
of sessions. Told to each session as a message, every member would wake its
actor task just to copy the frame into its outbox: one scheduler pass per
member, for nothing. ``send_text`` skips that pass. For each session of this
node the frame goes straight into the session's bounded outbox, exactly as
the session's own ``send_text`` would put it there: the session's writer task
sends it, a full outbox counts as a drop and starts the slow-consumer timer,
and a closing session takes nothing. The frame is one ``Outgoing`` shared
by all of them: on the gateway's own HTTP/1.1 path it is encoded once, and
written straight into each socket that can take it now (for the first
``DIRECT_WRITES`` sessions; the writer tasks of the others write it).

Sessions on another node cost one message for all of them: the frame and
their refs go to that node's gateway (registered as ``trouper.web@<node>``),
which hands the frame to them the same way there. Without a gateway known
there, each of them is told ``SendText``. So is an actor that is not a
session (it may handle ``SendText`` itself).

Frames sent through here to one session arrive in the order they were sent
(across nodes: while that node's gateway stays known or unknown; frames sent
while it appears or goes can swap places once). They may overtake messages
still waiting in the session's mailbox, so a broadcaster that must come
after a session's own reply (a "joined" before the first message) sends that
reply through here too.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import msgspec

from .._errors import TrouperError
from ..actors import message
from ..runtime import ActorRef, cell_of, node_of
from ._session import SendBytes, SendText, WebSocketSession
from ._wsframe import Outgoing

#: The cluster-wide name of each node's gateway actor.
GATEWAY_NAME = "trouper.web@{}"

#: Sessions one broadcast writes to directly, from the broadcaster's task.
#: Each direct write is a system call (about 20 µs): past this many, the
#: rest are queued for their writer tasks, so that one broadcast to a huge
#: room does not hold the Trio loop for more than a few milliseconds.
DIRECT_WRITES = 256


@message(name="trouper.web.FanOutFrame")
class FanOutFrame(msgspec.Struct, frozen=True):
    """To a node's gateway: hand this frame to these sessions of that node."""

    sessions: list[ActorRef]
    text: str | None = None
    data: bytes | None = None


@attrs.frozen
class FanOut:
    """What one ``send_text``/``send_bytes`` did."""

    #: Frames put into the outboxes of sessions of this node.
    queued: int
    #: ``SendText``/``SendBytes`` messages told (sessions of other nodes, other actors).
    forwarded: int
    #: Sessions that took nothing: closing, dead, a full outbox or a saturated link.
    dropped: int


def send_text(sessions: Iterable[ActorRef], text: str) -> FanOut:
    """Queue the text frame ``text`` on every session in ``sessions``, now.

    Never waits and never raises for one session's sake: what a session
    cannot take is counted in ``dropped``.
    """
    return _fan_out(sessions, Outgoing(text), SendText(text), text=text)


def send_bytes(sessions: Iterable[ActorRef], data: bytes) -> FanOut:
    """Queue the binary frame ``data`` on every session in ``sessions``, now."""
    data = bytes(data)
    return _fan_out(sessions, Outgoing(None, data), SendBytes(data), data=data)


def _fan_out(
    sessions: Iterable[ActorRef],
    frame: Outgoing,
    single: SendText | SendBytes,
    *,
    text: str | None = None,
    data: bytes | None = None,
) -> FanOut:
    queued = forwarded = dropped = 0
    elsewhere: dict[str, list[ActorRef]] = {}
    for ref in sessions:
        cell = cell_of(ref)
        if cell is None:
            node = node_of(ref)
            if node is None or ref.node_id == node.id:  # unreachable, or ours and gone
                dropped += 1
            else:
                elsewhere.setdefault(ref.node_id, []).append(ref)
            continue
        actor = cell.instance
        if actor is None:
            dropped += 1
        elif isinstance(actor, WebSocketSession):
            if actor.send_shared(frame, queued < DIRECT_WRITES):
                queued += 1
            else:
                dropped += 1
        elif _tell(ref, single):
            forwarded += 1
        else:
            dropped += 1
    for node_id, refs in elsewhere.items():
        via = node_of(refs[0])
        gateway = None if via is None else via.registry.get(GATEWAY_NAME.format(node_id))
        if gateway is not None:
            if _tell(gateway, FanOutFrame(refs, text, data)):
                forwarded += len(refs)
            else:
                dropped += len(refs)
            continue
        for ref in refs:
            if _tell(ref, single):
                forwarded += 1
            else:
                dropped += 1
    return FanOut(queued, forwarded, dropped)


def _tell(ref: ActorRef, msg: object) -> bool:
    try:
        ref.tell_nowait(msg)
    except TrouperError:  # a full mailbox or a saturated link
        return False
    return True
