"""The Yjs WebSocket protocol (y-websocket's), sans-IO: one binary frame is
one message.

    message   = varuint type, payload
    type 0    = sync:      varuint sub-type, varbytes (0 SyncStep1: a state
                vector; 1 SyncStep2: an update; 2 Update: an update)
    type 1    = awareness: varbytes (an awareness update: varuint count, then
                count x (varuint client id, varuint clock, varstring JSON state))
    type 3    = query-awareness (no payload)

``parse`` turns a frame into one of the message classes below or raises
``WireError`` naming what is wrong, with the WebSocket close code that fits
(1003 for what the edge does not speak, 1007 for bytes that do not decode,
1008 for what breaks a bound). It checks the framing exactly (no trailing
bytes), the shape of a state vector and of an awareness update (counts,
lengths, JSON states); an update's content is the document's to judge
(pycrdt refuses a malformed one there). The ``encode_*`` functions write
exactly what pycrdt's ``create_*_message`` helpers write.
"""

import json

import attrs
from pycrdt import write_var_uint

#: Close codes (RFC 6455) for a refused frame.
UNSUPPORTED = 1003  # a message type the edge does not speak, or a text frame
INVALID = 1007  # bytes that do not decode as a Yjs message
POLICY = 1008  # a bound is broken

SYNC, AWARENESS, AUTH, QUERY_AWARENESS = 0, 1, 2, 3
STEP1, STEP2, UPDATE = 0, 1, 2

#: A varuint longer than this many bytes is refused (2**63 needs 9 bytes of 7 bits).
MAX_VARUINT_BYTES = 9
#: Clients in one state vector: a document edited by more distinct clients
#: than this is not this example's (Yjs makes one per browser tab/session).
MAX_STATE_VECTOR_CLIENTS = 100_000
#: States in one awareness update (a client sends its own; a reply to a
#: query holds everyone's it knows of).
MAX_AWARENESS_STATES = 1_000
#: Bytes of one awareness state's JSON (a name, a colour, a cursor).
MAX_AWARENESS_STATE_BYTES = 8 * 1024


class WireError(ValueError):
    """A frame the edge refuses: close the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@attrs.frozen
class SyncStep1:
    state_vector: bytes


@attrs.frozen
class SyncStep2:
    update: bytes


@attrs.frozen
class SyncUpdate:
    update: bytes


@attrs.frozen
class AwarenessUpdate:
    update: bytes
    clients: tuple[int, ...]  # the client ids it carries states of


@attrs.frozen
class QueryAwareness:
    pass


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessUpdate | QueryAwareness


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def varuint(self, field: str) -> int:
        value = shift = 0
        for count in range(MAX_VARUINT_BYTES + 1):
            if self.pos >= len(self.data):
                raise WireError(INVALID, f"{self.what}: truncated at its {field}")
            if count == MAX_VARUINT_BYTES:
                raise WireError(INVALID, f"{self.what}: its {field} is not a varuint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
        raise AssertionError("unreachable")

    def varbytes(self, field: str) -> bytes:
        length = self.varuint(f"{field} length")
        end = self.pos + length
        if end > len(self.data):
            raise WireError(
                INVALID, f"{self.what}: its {field} claims {length} bytes, {self.left} left"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def end(self) -> None:
        if self.left:
            raise WireError(INVALID, f"{self.what}: {self.left} bytes after its end")


def check_state_vector(sv: bytes) -> None:
    """A state vector is a count, then (client id, clock) pairs, exactly."""
    r = _Reader(sv, "state vector")
    count = r.varuint("count")
    if count > MAX_STATE_VECTOR_CLIENTS:
        raise WireError(POLICY, f"state vector: {count} clients, over {MAX_STATE_VECTOR_CLIENTS}")
    for _ in range(count):
        r.varuint("client id")
        r.varuint("clock")
    r.end()


def awareness_clients(update: bytes) -> tuple[int, ...]:
    """The client ids of an awareness update, checked for shape and bounds."""
    r = _Reader(update, "awareness update")
    count = r.varuint("count")
    if count > MAX_AWARENESS_STATES:
        raise WireError(POLICY, f"awareness update: {count} states, over {MAX_AWARENESS_STATES}")
    clients = []
    for _ in range(count):
        clients.append(r.varuint("client id"))
        r.varuint("clock")
        state = r.varbytes("state")
        if len(state) > MAX_AWARENESS_STATE_BYTES:
            raise WireError(
                POLICY,
                f"awareness update: a state of {len(state)} bytes,"
                f" over {MAX_AWARENESS_STATE_BYTES}",
            )
        try:
            json.loads(state)
        except ValueError:
            raise WireError(INVALID, "awareness update: a state is not JSON") from None
    r.end()
    return tuple(clients)


def parse(frame: bytes) -> Message:
    """One client frame as a message, or ``WireError``."""
    r = _Reader(frame, "message")
    kind = r.varuint("type")
    if kind == SYNC:
        r.what = "sync message"
        step = r.varuint("sub-type")
        if step not in (STEP1, STEP2, UPDATE):
            raise WireError(UNSUPPORTED, f"sync message: unknown sub-type {step}")
        payload = r.varbytes("payload")
        r.end()
        if step == STEP1:
            check_state_vector(payload)
            return SyncStep1(payload)
        return SyncStep2(payload) if step == STEP2 else SyncUpdate(payload)
    if kind == AWARENESS:
        r.what = "awareness message"
        payload = r.varbytes("payload")
        r.end()
        return AwarenessUpdate(payload, awareness_clients(payload))
    if kind == QUERY_AWARENESS:
        r.what = "query-awareness message"
        r.end()
        return QueryAwareness()
    if kind == AUTH:
        raise WireError(UNSUPPORTED, "auth messages (type 2) are not spoken here")
    raise WireError(UNSUPPORTED, f"unknown message type {kind}")


def _sync(step: int, payload: bytes) -> bytes:
    return bytes((SYNC, step)) + write_var_uint(len(payload)) + payload


def encode_sync_step1(state_vector: bytes) -> bytes:
    return _sync(STEP1, state_vector)


def encode_sync_step2(update: bytes) -> bytes:
    return _sync(STEP2, update)


def encode_update(update: bytes) -> bytes:
    return _sync(UPDATE, update)


def encode_awareness(update: bytes) -> bytes:
    return bytes((AWARENESS,)) + write_var_uint(len(update)) + update


def encode_query_awareness() -> bytes:
    return bytes((QUERY_AWARENESS,))


#: An update that changes nothing (no structs, empty delete set): Yjs sends
#: it as the SyncStep2 of a peer that has nothing to add.
EMPTY_UPDATE = b"\x00\x00"
#: An awareness message with no states: a harmless frame that tells a
#: y-websocket client the connection is alive (it reconnects after 30 s of
#: silence).
KEEPALIVE = encode_awareness(b"\x00")
