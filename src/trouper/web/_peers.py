"""Other nodes through the gateway's port: ``WebGateway(peers_path=...)``.

A WebSocket upgrade on ``peers_path`` is not a session: it is a trouper
peer, handed as a ``trio.abc.Stream`` (``AsgiWebSocketStream``) to the
node's ``Remoting.accept`` (``trouper.remote``), exactly like a connection accepted by a ws://
listener. The node advertises ``ws://host:port/peers_path`` among its
addresses while the gateway serves, so peers can dial it and gossip it.

Binary messages only: a text message closes the connection (1003) and is a
``ProtocolError``. hypercorn reports every client close as a disconnect
(without the client's code), which reads as EOF.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, NoReturn, TypeVar

import trio

from .._errors import ConnectionLost
from ..transports._message_stream import MessageStream
from ._connection import CLOSE_NORMAL, ASGIReceive, ASGISend

T = TypeVar("T")

CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_TOO_BIG = 1009


def peer_name(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    scheme = "wss" if scope.get("scheme") == "wss" else "ws"
    if not client:
        return f"{scheme}://<unknown peer>"
    host, port = client[0], client[1]
    host = f"[{host}]" if ":" in str(host) else host
    return f"{scheme}://{host}:{port}"


class AsgiWebSocketStream(MessageStream):
    """One accepted ASGI WebSocket as a byte stream of binary messages.

    ``aclose`` sends a close frame (1000, waiting at most ``close_timeout``;
    none when cancelled) and wakes any task still blocked on this stream
    with ``ClosedResourceError``.
    """

    def __init__(
        self,
        receive: ASGIReceive,
        send: ASGISend,
        peer: str,
        max_message_size: int,
        close_timeout: float,
    ) -> None:
        super().__init__(peer, max_message_size, close_timeout)
        self._receive = receive
        self._send = send
        self._close_sent = False
        self._disconnected = False
        self._waits: set[trio.CancelScope] = set()

    async def _wait(self, operation: Awaitable[T]) -> T:
        """Await ``operation``, unless ``aclose`` interrupts it."""
        with trio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                return await operation
            finally:
                self._waits.discard(scope)
        raise trio.ClosedResourceError("this WebSocket stream was closed meanwhile")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check(self._sending, "sending")
        if self._close_sent or self._disconnected:
            raise ConnectionLost(f"WebSocket from {self.peer} is closed")
        await super().send_all(data)

    async def _send_message(self, message: bytes) -> None:
        await self._wait(self._send({"type": "websocket.send", "bytes": message}))

    async def _next_message(self) -> bytes:
        while not self._disconnected:
            event = await self._wait(self._receive())
            kind = event.get("type")
            if kind == "websocket.disconnect":
                self._disconnected = True
            elif kind == "websocket.receive":
                data = event.get("bytes")
                if data is None:
                    await self._refuse_text()
                if data:
                    return bytes(data)
        return b""

    async def _refuse_text(self) -> NoReturn:
        await self._close(CLOSE_UNSUPPORTED_DATA, "binary messages only")
        raise self._text_refused()

    async def _close(self, code: int, reason: str) -> None:
        if self._close_sent or self._disconnected:
            return
        self._close_sent = True
        with trio.move_on_after(self._close_timeout):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        for scope in self._waits:
            scope.cancel()
        await self._close(CLOSE_NORMAL, "")


def limit_session_messages(
    receive: ASGIReceive, send: ASGISend, limit: int
) -> tuple[ASGIReceive, ASGISend]:
    """A session's ``receive`` and ``send`` that enforce ``limit`` themselves.

    With a peers path, hypercorn must let 16 MiB messages through, so the
    gateway's own (smaller) ``max_message_size`` for sessions is checked
    here: a larger message closes with 1009, as hypercorn would have, and
    reads as the client's disconnect; what the session sends after that is
    dropped, as hypercorn drops it once a client is gone.
    """
    closed = False

    async def receive_limited() -> Any:
        nonlocal closed
        if closed:
            return {"type": "websocket.disconnect", "code": CLOSE_TOO_BIG}
        event = await receive()
        if event.get("type") == "websocket.receive":
            body = event.get("bytes")
            if body is None:
                body = event.get("text") or ""
            if len(body) > limit:
                closed = True
                await send({"type": "websocket.close", "code": CLOSE_TOO_BIG, "reason": ""})
                return {"type": "websocket.disconnect", "code": CLOSE_TOO_BIG}
        return event

    async def send_limited(event: Any) -> None:
        if closed:
            await trio.lowlevel.checkpoint()
            return
        await send(event)

    return receive_limited, send_limited


def peers_url(base: str, path: str) -> str:
    """``http://host:port`` (the bound gateway) → ``ws://host:port/path``."""
    return "ws" + base.removeprefix("http") + path
