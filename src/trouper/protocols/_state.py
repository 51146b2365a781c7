"""The connection state machine, as one transition table (like h11's).

Each side of a connection walks its own column of the table; an event is an
envelope kind sent or received. Anything missing from the table is a protocol
error and leaves the connection in ``ERROR`` for good.

Initiator::

    IDLE --send Hello--> SENT_HELLO --recv Challenge--> CHALLENGED
         --send Welcome--> SENT_PROOF --recv Welcome--> ESTABLISHED

Acceptor::

    AWAIT_HELLO --recv Hello--> GOT_HELLO --send Challenge--> SENT_CHALLENGE
                --recv Welcome--> PROVED --send Welcome--> ESTABLISHED

Both, afterwards::

    ESTABLISHED --send/recv data--> ESTABLISHED
    ESTABLISHED --send Goodbye--> CLOSING   (the peer's in-flight data is
    CLOSING     --recv data--> CLOSING       still accepted until its Goodbye)
    any live state --recv Goodbye--> CLOSED
    any state   --send Goodbye--> same state (CLOSED from the handshake states)

Sending a Goodbye is always allowed, even in ``ERROR`` and ``CLOSED``: that is
how a side explains why it is hanging up.
"""

from __future__ import annotations

import enum

from trouper._errors import LocalProtocolError, RemoteProtocolError

from ._envelopes import Challenge, Envelope, Goodbye, Hello, Welcome

__all__ = ["TRANSITIONS", "ConnState", "ConnectionState", "Direction", "Event", "Role", "event_of"]


class Role(enum.Enum):
    INITIATOR = "initiator"
    ACCEPTOR = "acceptor"


class ConnState(enum.Enum):
    IDLE = "idle"
    SENT_HELLO = "sent-hello"
    CHALLENGED = "challenged"
    SENT_PROOF = "sent-proof"
    AWAIT_HELLO = "await-hello"
    GOT_HELLO = "got-hello"
    SENT_CHALLENGE = "sent-challenge"
    PROVED = "proved"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"
    ERROR = "error"


class Direction(enum.Enum):
    SEND = "send"
    RECEIVE = "receive"


class Event(enum.Enum):
    HELLO = "Hello"
    CHALLENGE = "Challenge"
    WELCOME = "Welcome"
    GOODBYE = "Goodbye"
    #: Every other envelope: messaging, streams, spawn, cluster traffic.
    DATA = "data"


_EVENTS: dict[type, Event] = {
    Hello: Event.HELLO,
    Challenge: Event.CHALLENGE,
    Welcome: Event.WELCOME,
    Goodbye: Event.GOODBYE,
}


def event_of(env: Envelope) -> Event:
    return _EVENTS.get(type(env), Event.DATA)


_I, _A = Role.INITIATOR, Role.ACCEPTOR
_SEND, _RECV = Direction.SEND, Direction.RECEIVE
S = ConnState

INITIAL_STATE: dict[Role, ConnState] = {_I: S.IDLE, _A: S.AWAIT_HELLO}

_HANDSHAKE_STATES: dict[Role, tuple[ConnState, ...]] = {
    _I: (S.IDLE, S.SENT_HELLO, S.CHALLENGED, S.SENT_PROOF),
    _A: (S.AWAIT_HELLO, S.GOT_HELLO, S.SENT_CHALLENGE, S.PROVED),
}


def _build() -> dict[tuple[Role, ConnState, Direction, Event], ConnState]:
    table = {
        (_I, S.IDLE, _SEND, Event.HELLO): S.SENT_HELLO,
        (_I, S.SENT_HELLO, _RECV, Event.CHALLENGE): S.CHALLENGED,
        (_I, S.CHALLENGED, _SEND, Event.WELCOME): S.SENT_PROOF,
        (_I, S.SENT_PROOF, _RECV, Event.WELCOME): S.ESTABLISHED,
        (_A, S.AWAIT_HELLO, _RECV, Event.HELLO): S.GOT_HELLO,
        (_A, S.GOT_HELLO, _SEND, Event.CHALLENGE): S.SENT_CHALLENGE,
        (_A, S.SENT_CHALLENGE, _RECV, Event.WELCOME): S.PROVED,
        (_A, S.PROVED, _SEND, Event.WELCOME): S.ESTABLISHED,
    }
    for role in Role:
        table[role, S.ESTABLISHED, _SEND, Event.DATA] = S.ESTABLISHED
        table[role, S.ESTABLISHED, _RECV, Event.DATA] = S.ESTABLISHED
        table[role, S.ESTABLISHED, _SEND, Event.GOODBYE] = S.CLOSING
        table[role, S.CLOSING, _RECV, Event.DATA] = S.CLOSING
        for state in (*_HANDSHAKE_STATES[role], S.ESTABLISHED, S.CLOSING):
            table[role, state, _RECV, Event.GOODBYE] = S.CLOSED
        for state in _HANDSHAKE_STATES[role]:
            table[role, state, _SEND, Event.GOODBYE] = S.CLOSED
        for state in (S.CLOSING, S.CLOSED, S.ERROR):
            table[role, state, _SEND, Event.GOODBYE] = state
    return table


#: (role, state, direction, event) -> next state. Absent keys are errors.
TRANSITIONS: dict[tuple[Role, ConnState, Direction, Event], ConnState] = _build()


class ConnectionState:
    """One side's position in ``TRANSITIONS``."""

    __slots__ = ("role", "state")

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = INITIAL_STATE[role]

    def process(self, direction: Direction, event: Event, what: str | None = None) -> ConnState:
        """Apply the event, or raise and enter ``ERROR``: ``LocalProtocolError``
        for something we tried to send out of turn, ``RemoteProtocolError``
        for something the peer sent out of turn.

        ``what`` names the envelope in the error message (default: the event).
        """
        new = TRANSITIONS.get((self.role, self.state, direction, event))
        if new is None:
            old = self.state
            self.state = ConnState.ERROR
            verb = "send" if direction is Direction.SEND else "receive"
            error = LocalProtocolError if direction is Direction.SEND else RemoteProtocolError
            raise error(
                f"{self.role.value} cannot {verb} {what or event.value} in state {old.value}"
            )
        self.state = new
        return new

    def fail(self) -> None:
        self.state = ConnState.ERROR
