"""Whole messages over a byte stream, sans-IO: a length header per message.

``trouper.transports.connect``/``serve`` carry messages, not bytes. On a
stream transport (tcp, tls, quic) each message is a 4-byte big-endian length
followed by that many bytes; the reserved length ``0xFFFFFFFF`` is the *end
mark*: "no more messages from this side" (a half-close that works over TLS
too, which has no half-close of its own), and ``0xFFFFFFFE`` a no-op (see
``NOOP``). WebSocket carries messages
natively and does not use this module.

``FrameReader`` is fed whatever bytes arrived and hands back complete
messages. It holds at most one message plus one read's worth of bytes, and
refuses a header announcing more than ``max_message_size`` before reading
the body, so a peer cannot make it buffer more than the limit.
"""

from __future__ import annotations

import struct
from typing import Final

from trouper._errors import ConfigurationError, FrameTooLarge

__all__ = ["END", "HEADER_SIZE", "MAX_LIMIT", "NOOP", "FrameReader", "check_limit", "header"]

_HEADER = struct.Struct(">I")
HEADER_SIZE: Final = _HEADER.size
_END_MARK: Final = 0xFFFF_FFFF
_NOOP_MARK: Final = 0xFFFF_FFFE
#: The largest ``max_message_size`` the header can express (the marks excluded).
MAX_LIMIT: Final = _NOOP_MARK - 1
#: A header that carries nothing and is skipped: a QUIC client sends it first,
#: because a QUIC stream reaches the server only with its first bytes, and a
#: server that speaks first must not wait for the client's first message.
NOOP: Final = struct.pack(">I", _NOOP_MARK)


class _End:
    """The peer sent its end mark: no more messages will come from it."""

    def __repr__(self) -> str:
        return "END"


END: Final = _End()


def check_limit(max_message_size: object) -> int:
    """``max_message_size`` as an int, or ``ConfigurationError`` saying why not."""
    if not isinstance(max_message_size, int) or isinstance(max_message_size, bool):
        raise ConfigurationError(
            f"max_message_size must be an int, got {type(max_message_size).__name__}"
        )
    if not 1 <= max_message_size <= MAX_LIMIT:
        raise ConfigurationError(
            f"max_message_size must be between 1 and {MAX_LIMIT}, got {max_message_size}"
        )
    return max_message_size


def too_large(size: int, limit: int, *, sending: bool) -> FrameTooLarge:
    if sending:
        return FrameTooLarge(
            f"message of {size} bytes is larger than max_message_size ({limit} bytes);"
            " nothing was sent"
        )
    return FrameTooLarge(
        f"the peer announced a message of {size} bytes, larger than max_message_size"
        f" ({limit} bytes); the session is closed"
    )


def header(size: int | None) -> bytes:
    """The header of a message of ``size`` bytes, or the end mark for None."""
    return _HEADER.pack(_END_MARK if size is None else size)


class FrameReader:
    """Splits a byte stream into messages (see the module docstring)."""

    __slots__ = ("_buffer", "_ended", "_limit", "_want")

    def __init__(self, max_message_size: int) -> None:
        self._limit = check_limit(max_message_size)
        self._buffer = bytearray()
        self._want: int | None = None  # the body size once its header is read
        self._ended = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def mid_message(self) -> bool:
        """Some bytes of a message arrived but not all: EOF now is a broken stream."""
        return bool(self._buffer) or self._want is not None

    def wanted(self) -> int:
        """How many more bytes the next message needs at least (for the read size)."""
        if self._want is None:
            return HEADER_SIZE - len(self._buffer)
        return self._want - len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data

    def next(self) -> bytes | _End | None:
        """The next complete message, ``END``, or None when more bytes are needed.

        Raises ``FrameTooLarge`` for a header over the limit; bytes after the
        end mark are a protocol error the caller never sees: they are ignored.
        """
        if self._ended:
            return END
        while self._want is None:
            if len(self._buffer) < HEADER_SIZE:
                return None
            (size,) = _HEADER.unpack_from(self._buffer)
            del self._buffer[:HEADER_SIZE]
            if size == _NOOP_MARK:
                continue
            if size == _END_MARK:
                self._ended = True
                self._buffer.clear()
                return END
            if size > self._limit:
                raise too_large(size, self._limit, sending=False)
            self._want = size
        if len(self._buffer) < self._want:
            return None
        message = bytes(self._buffer[: self._want])
        del self._buffer[: self._want]
        self._want = None
        return message
