"""How a ``MessageSession`` puts messages on one transport's stream.

A codec owns the stream and moves whole messages: ``write`` a batch (and
maybe the end mark), ``read`` one message (None once the peer sent its end
mark or closed cleanly between messages). ``StreamCodec`` length-prefixes
messages on byte streams (tcp, tls, quic; see ``_msg_framing``); the
WebSocket codec, in ``_codecs_ws``, sends one native message per message and
is imported only for ws:// and wss://, so ``import trouper`` never loads
trio-websocket. Exceptions leave a codec raw; the session maps them at its
one edge.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Protocol

import trio

from trouper._errors import ConnectionLost

from ._msg_framing import END, FrameReader, header

__all__ = ["Codec", "Framed", "StreamCodec", "codec_for"]

# Small messages of one batch are joined into one write (one syscall, one
# packet with TCP_NODELAY); anything this large goes out on its own, uncopied.
_JOIN_BELOW = 64 * 1024
# The least a read asks for: a burst of small messages arrives in one read.
_READ_SIZE = 64 * 1024


class Codec(Protocol):
    stream: trio.abc.Stream

    def try_write(self, message: bytes) -> bytes | None: ...

    async def write(self, batch: Sequence[bytes | Framed], end: bool) -> None: ...

    async def read(self) -> bytes | None: ...


class Framed(bytes):
    """Bytes already framed: the rest of a message ``try_write`` began."""

    __slots__ = ()


class StreamCodec:
    """Length-prefixed messages on a byte stream."""

    __slots__ = ("_fd", "_reader", "peer", "stream")

    def __init__(self, stream: trio.abc.Stream, max_message_size: int, peer: str) -> None:
        self.stream = stream
        self.peer = peer
        self._reader = FrameReader(max_message_size)
        # A plain TCP socket (trio keeps it non-blocking) can take a small
        # message right away, from the sender's own task: see try_write.
        self._fd = -1
        if isinstance(stream, trio.SocketStream) and sys.platform != "win32":
            self._fd = stream.socket.fileno()

    def try_write(self, message: bytes) -> bytes | None:
        """Write ``message`` now without waiting, if this is a plain socket
        and the message is small; returns what did not fit (``b""`` when all
        did), or None when it must go through ``write``.

        One non-blocking ``send`` cannot be interrupted half-way, so no
        cancellation can leave half a frame behind; what the kernel did not
        take is returned for the writer to finish, already framed.
        """
        if self._fd < 0 or len(message) >= _JOIN_BELOW:
            return None
        data = header(len(message)) + message
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            return data
        except OSError:
            return None  # the writer meets the error the usual way, and maps it
        return data[sent:]

    @property
    def buffered(self) -> int:
        return self._reader.buffered

    async def write(self, batch: Sequence[bytes | Framed], end: bool) -> None:
        pending = bytearray()
        for message in batch:
            if isinstance(message, Framed):
                pending += message
                continue
            pending += header(len(message))
            if len(message) < _JOIN_BELOW:
                pending += message
                continue
            await self.stream.send_all(pending)
            await self.stream.send_all(message)
            pending.clear()
        if end:
            pending += header(None)
        if pending:
            await self.stream.send_all(pending)

    async def read(self) -> bytes | None:
        while True:
            item = self._reader.next()
            if item is END:
                return None
            if isinstance(item, bytes):
                return item
            chunk = await self.stream.receive_some(max(self._reader.wanted(), _READ_SIZE))
            if not chunk:
                if self._reader.mid_message:
                    raise ConnectionLost(f"{self.peer} closed the connection in mid-message")
                return None  # a clean close between messages reads as the end
            self._reader.feed(chunk)


def codec_for(scheme: str, stream: trio.abc.Stream, max_message_size: int, peer: str) -> Codec:
    if scheme in ("ws", "wss"):
        from ._codecs_ws import WebSocketCodec  # trio-websocket: only when asked for

        return WebSocketCodec(stream, max_message_size, peer)
    return StreamCodec(stream, max_message_size, peer)
