"""One frame to many WebSocket sessions: the broadcast fast lane.

A broadcast (a chat room, a shared document) sends the same frame to hundreds
of sessions. Told to each session as a message, every member would wake its
actor task just to copy the frame into its outbox: one scheduler pass per
member, for nothing. ``send_text`` skips that pass. For each session of this
node the frame goes straight into the session's bounded outbox, exactly as
the session's own ``send_text`` would put it there: the session's writer task
sends it, a full outbox counts as a drop and starts the slow-consumer timer,
and a closing session takes nothing. A session on another node is told
``SendText``, which it handles the same way on its node; so is a local actor
that is not a session (it may handle ``SendText`` itself).

Frames sent through here to one session arrive in the order they were sent.
They may overtake messages still waiting in the session's mailbox, so a
broadcaster that must come after a session's own reply (a "joined" before the
first message) sends that reply through here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from .._errors import TrouperError
from ..runtime._ref import ActorRef
from ..runtime._states import DEAD
from ._session import SendBytes, SendText, WebSocketSession


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
    return _fan_out(sessions, lambda session: session.send_text(text), SendText(text))


def send_bytes(sessions: Iterable[ActorRef], data: bytes) -> FanOut:
    """Queue the binary frame ``data`` on every session in ``sessions``, now."""
    data = bytes(data)
    return _fan_out(sessions, lambda session: session.send_bytes(data), SendBytes(data))


def _fan_out(
    sessions: Iterable[ActorRef],
    offer: Callable[[WebSocketSession], bool],
    remote: SendText | SendBytes,
) -> FanOut:
    queued = forwarded = dropped = 0
    for ref in sessions:
        cell = ref._cell
        if cell is not None:
            if cell._state == DEAD:
                dropped += 1
                continue
            actor = cell._actor
            if isinstance(actor, WebSocketSession):
                if offer(actor):
                    queued += 1
                else:
                    dropped += 1
                continue
        try:  # a session of another node (its node queues the frame), or not a session
            ref.tell_nowait(remote)
        except TrouperError:
            dropped += 1
        else:
            forwarded += 1
    return FanOut(queued, forwarded, dropped)
