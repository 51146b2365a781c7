"""``MessageStream``: a byte stream over a connection of binary messages.

A WebSocket carries messages, the runtime reads and writes a byte stream.
Both WebSocket streams (a ws:// connection through trio-websocket, and a
peer accepted by the web gateway through ASGI) adapt one to the other the
same way, here: ``send_all`` sends one message, split above
``max_message_size`` (the peer reads bytes, not messages); ``receive_some``
returns one message's bytes, keeping what exceeds ``max_bytes`` for the next
call; one task at a time may send, and one receive.

A subclass supplies ``_send_message`` and ``_next_message`` (``b""`` at
EOF, never empty otherwise) and its own ``aclose``, which sets ``_closed``.
"""

from __future__ import annotations

import trio

from trouper._errors import ProtocolError

__all__ = ["MessageStream"]


class MessageStream(trio.abc.Stream):
    def __init__(self, peer: str, max_message_size: int, close_timeout: float) -> None:
        self.peer = peer
        self._max = max_message_size
        self._close_timeout = close_timeout
        self._pending = memoryview(b"")
        self._closed = False  # by aclose
        self._sending = False
        self._receiving = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.peer}{' closed' if self._closed else ''}>"

    async def _send_message(self, message: bytes) -> None:
        raise NotImplementedError

    async def _next_message(self) -> bytes:
        raise NotImplementedError

    def _check(self, busy: bool, what: str) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this WebSocket stream is closed")
        if busy:
            raise trio.BusyResourceError(f"another task is already {what} on this stream")

    def _text_refused(self) -> ProtocolError:
        return ProtocolError(
            f"{self.peer} sent a text WebSocket message; trouper peers send binary messages only"
        )

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check(self._sending, "sending")
        self._sending = True
        try:
            if not data:
                await trio.lowlevel.checkpoint()
                return
            if len(data) <= self._max:
                await self._send_message(bytes(data))
                return
            view = memoryview(data)
            for start in range(0, len(view), self._max):
                await self._send_message(bytes(view[start : start + self._max]))
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        self._check(False, "sending")
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self._check(self._receiving, "receiving")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self._receiving = True
        try:
            if self._pending:
                await trio.lowlevel.checkpoint()
            else:
                message = await self._next_message()
                if max_bytes is None or len(message) <= max_bytes:
                    return message  # the common case: no copy
                self._pending = memoryview(message)
            size = len(self._pending) if max_bytes is None else max_bytes
            chunk, self._pending = self._pending[:size], self._pending[size:]
            return bytes(chunk)
        finally:
            self._receiving = False
