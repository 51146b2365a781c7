"""Messages on a WebSocket: one binary WebSocket message per message.

WebSocket has messages of its own, so nothing is added to them: a browser or
any WebSocket client talks to a ``serve("ws://...")`` server as-is. The end
mark (a half-close, which WebSocket lacks) is the one text message
``END_TEXT``; any other text message is bad input from the peer. A close
with 1000/1001 reads as the end too. The transport's own
``max_message_size`` (17 MiB by default) closes the connection with 1009 on
anything larger; the session's smaller limit is checked here.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
import trio_websocket as tws

from trouper._errors import ConfigurationError, RemoteProtocolError

from ._msg_framing import too_large

__all__ = ["END_TEXT", "WebSocketCodec"]

END_TEXT = "trouper:end"
_EOF_CODES = frozenset({1000, 1001})


class WebSocketCodec:
    __slots__ = ("_ended", "_limit", "peer", "stream", "websocket")

    def __init__(self, stream: trio.abc.Stream, max_message_size: int, peer: str) -> None:
        websocket = getattr(stream, "websocket", None)
        if not isinstance(websocket, tws.WebSocketConnection):
            raise ConfigurationError(f"{stream!r} is not a WebSocket stream")
        self.stream = stream
        self.websocket = websocket
        self.peer = peer
        self._limit = max_message_size
        self._ended = False

    @property
    def buffered(self) -> int:
        return 0

    def try_write(self, message: bytes) -> bytes | None:
        return None  # trio-websocket writes only from a task

    async def write(self, batch: Sequence[bytes], end: bool) -> None:
        for message in batch:
            await self.websocket.send_message(message)
        if end:
            await self.websocket.send_message(END_TEXT)

    async def read(self) -> bytes | None:
        if self._ended:
            await trio.lowlevel.checkpoint()
            return None
        try:
            message = await self.websocket.get_message()
        except tws.ConnectionClosed as exc:
            if exc.reason is not None and exc.reason.code in _EOF_CODES:
                self._ended = True
                return None
            raise
        if isinstance(message, str):
            if message == END_TEXT:
                self._ended = True
                return None
            raise RemoteProtocolError(
                f"{self.peer} sent a text WebSocket message; sessions carry binary messages"
            )
        if len(message) > self._limit:
            raise too_large(len(message), self._limit, sending=False)
        return message
