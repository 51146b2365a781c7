"""WebSocket framing (RFC 6455), sans-IO: the handshake, encoding, decoding.

``FrameDecoder(max_message_size).feed(data)`` returns the messages and
control frames that ``data`` completes, whatever the read split and the
fragmentation; a frame that breaks the protocol raises ``WsProtocolError``
whose ``code`` is the close code to answer with (1002, 1007 for text that
is not UTF-8, 1009 for a message over the limit, checked from the frame
headers before any payload is buffered). A server's decoder demands masked
frames, a client's (``masked=False``) unmasked ones.

``Outgoing`` is one frame to send, shared by every session a broadcast
reaches: its wire bytes are encoded once, by the first connection that
needs them, and the hypercorn path reads its ASGI event instead.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

__all__ = [
    "Close",
    "FrameDecoder",
    "HandshakeError",
    "Message",
    "Outgoing",
    "Ping",
    "Pong",
    "WsProtocolError",
    "accept_key",
    "check_handshake",
    "close_frame",
    "encode_frame",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NO_STATUS = 1005
CLOSE_PROTOCOL = 1002
CLOSE_BAD_DATA = 1007
CLOSE_TOO_BIG = 1009
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Close codes a peer may send (RFC 6455 7.4, and the IANA registry up to 1014).
_SENDABLE = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


class WsProtocolError(Exception):
    """The peer broke the protocol: close with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    """An upgrade request we refuse: answer ``status`` (and ``headers``)."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.headers = headers


class Message:
    """A whole data message: ``str`` for text, ``bytes`` for binary."""

    __slots__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other.data == self.data

    def __repr__(self) -> str:
        return f"Message({self.data!r})"


class Ping:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Pong:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Close:
    """The peer's close frame; ``code`` 1005 when it carried none."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


Event = Message | Ping | Pong | Close


def accept_key(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` answering ``Sec-WebSocket-Key: key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in (value or "").split(",")}


def check_handshake(method: str, version: str, header: Any) -> bytes:
    """The client's key if this is a WebSocket upgrade we accept, else
    ``HandshakeError``. ``header(name)`` reads one request header."""
    if method != "GET" or version != "1.1":
        raise HandshakeError(400, "a WebSocket upgrade is a GET over HTTP/1.1")
    if "websocket" not in _tokens(header("upgrade")):
        raise HandshakeError(400, "Upgrade: websocket is missing")
    if "upgrade" not in _tokens(header("connection")):
        raise HandshakeError(400, "Connection: upgrade is missing")
    if (header("sec-websocket-version") or "").strip() != "13":
        raise HandshakeError(
            426, "Sec-WebSocket-Version must be 13", (("sec-websocket-version", "13"),)
        )
    key = (header("sec-websocket-key") or "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    return key.encode("ascii")


def _xor(payload: bytes, key: bytes) -> bytes:
    # One big-integer XOR: linear, and far faster than a Python loop per byte.
    n = len(payload)
    if not n:
        return b""
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(payload, "little") ^ mask).to_bytes(n, "little")


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame; a client passes a 4-byte ``mask``."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        return head + mask + _xor(payload, mask)
    return head + payload


def close_frame(code: int, reason: str = "", mask: bytes | None = None) -> bytes:
    """A close frame; the reason is cut to fit the 125 bytes of a control frame."""
    payload = code.to_bytes(2, "big") + reason.encode()[:123].decode(errors="ignore").encode()
    return encode_frame(OP_CLOSE, payload, mask=mask)


class FrameDecoder:
    """Bytes in, ``Event``s out. Holds at most one message under way (at most
    ``max_message_size`` bytes) and one partial frame."""

    def __init__(self, max_message_size: int, *, masked: bool = True) -> None:
        self.max_message_size = max_message_size
        self.masked = masked
        self._buffer = bytearray()
        self._parts: list[bytes] = []
        self._size = 0
        self._opcode: int | None = None  # of the fragmented message under way

    def feed(self, data: bytes) -> list[Event]:
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        at = 0
        end = len(buffer)
        while end - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            n = second & 0x7F
            head = 2
            if n == 126:
                head = 4
                if end - at < head:
                    break
                n = int.from_bytes(buffer[at + 2 : at + 4], "big")
            elif n == 127:
                head = 10
                if end - at < head:
                    break
                n = int.from_bytes(buffer[at + 2 : at + 10], "big")
                if n >> 63:
                    raise WsProtocolError(CLOSE_PROTOCOL, "frame length over 2**63")
            opcode = self._check_head(first, second, n)
            if second & 0x80:
                head += 4
            if end - at < head + n:
                break
            payload = bytes(buffer[at + head : at + head + n])
            if second & 0x80:
                payload = _xor(payload, bytes(buffer[at + head - 4 : at + head]))
            at += head + n
            event = self._frame(first & 0x80, opcode, payload)
            if event is not None:
                events.append(event)
        del buffer[:at]
        return events

    def _check_head(self, first: int, second: int, n: int) -> int:
        """Every rule a frame's header alone decides (before its payload is held)."""
        opcode = first & 0x0F
        if first & 0x70:
            raise WsProtocolError(CLOSE_PROTOCOL, "reserved bits set (no extension agreed)")
        if bool(second & 0x80) != self.masked:
            raise WsProtocolError(
                CLOSE_PROTOCOL, "client frames must be masked" if self.masked else "masked frame"
            )
        if opcode >= OP_CLOSE:
            if opcode > OP_PONG:
                raise WsProtocolError(CLOSE_PROTOCOL, f"unknown opcode {opcode}")
            if not first & 0x80 or n > 125:
                raise WsProtocolError(CLOSE_PROTOCOL, "control frames are whole and <= 125 bytes")
            return opcode
        if opcode > OP_BINARY:
            raise WsProtocolError(CLOSE_PROTOCOL, f"unknown opcode {opcode}")
        if opcode == OP_CONT and self._opcode is None:
            raise WsProtocolError(CLOSE_PROTOCOL, "continuation frame without a message")
        if opcode != OP_CONT and self._opcode is not None:
            raise WsProtocolError(CLOSE_PROTOCOL, "new message inside a fragmented one")
        if self._size + n > self.max_message_size:
            raise WsProtocolError(CLOSE_TOO_BIG, f"message over {self.max_message_size} bytes")
        return opcode

    def _frame(self, fin: int, opcode: int, payload: bytes) -> Event | None:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return _close(payload)
        if opcode != OP_CONT:
            self._opcode = opcode
        if not fin:
            self._parts.append(payload)
            self._size += len(payload)
            return None
        if self._parts:
            self._parts.append(payload)
            payload = b"".join(self._parts)
            self._parts = []
            self._size = 0
        kind, self._opcode = self._opcode, None
        if kind == OP_BINARY:
            return Message(payload)
        try:
            return Message(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise WsProtocolError(CLOSE_BAD_DATA, "text message is not UTF-8") from None


def _close(payload: bytes) -> Close:
    if not payload:
        return Close(CLOSE_NO_STATUS, "")
    if len(payload) == 1:
        raise WsProtocolError(CLOSE_PROTOCOL, "close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _SENDABLE and not 3000 <= code <= 4999:
        raise WsProtocolError(CLOSE_PROTOCOL, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise WsProtocolError(CLOSE_BAD_DATA, "close reason is not UTF-8") from None
    return Close(code, reason)


class Outgoing:
    """One text or binary frame to send, shareable by many connections."""

    __slots__ = ("_wire", "data", "text")

    def __init__(self, text: str | None = None, data: bytes | None = None) -> None:
        self.text = text
        self.data = data
        self._wire: bytes | None = None

    @classmethod
    def raw(cls, wire: bytes) -> Outgoing:
        """Bytes already encoded (``FLUSH``, the empty one, in ``_wsfast``)."""
        frame = cls()
        frame._wire = wire
        return frame

    @property
    def size(self) -> int:
        """What the frame counts against a session's ``outbox_bytes``: its
        payload's length (characters of a text frame)."""
        if self.text is not None:
            return len(self.text)
        if self.data is not None:
            return len(self.data)
        return len(self._wire or b"")

    def wire(self) -> bytes:
        """The encoded (unmasked, server-side) frame, encoded on first use."""
        wire = self._wire
        if wire is None:
            if self.text is not None:
                wire = encode_frame(OP_TEXT, self.text.encode())
            else:
                wire = encode_frame(OP_BINARY, self.data or b"")
            self._wire = wire
        return wire

    def event(self) -> dict[str, Any]:
        """The ASGI ``websocket.send`` event of this frame (the hypercorn path)."""
        if self.text is not None:
            return {"type": "websocket.send", "text": self.text}
        return {"type": "websocket.send", "bytes": self.data or b""}
