"""WebSockets of mounted ASGI apps on the fast path (the admin dashboard's live view).

The gateway's own WebSocket endpoints (``ws_path``, ``peers_path``) have a
fast path of their own; a mounted app's WebSocket is rarer and runs through
this bridge: wsproto frames the connection, and the app gets the ASGI
``websocket`` events. The upgrade request, already parsed, is given back to
wsproto as bytes, so it checks the handshake itself.

Bounds: a message from the client over ``max_message_size`` closes the
connection (1009); sends are serialized (one ``send_all`` at a time), and
an app that stops reading stops the socket being read (backpressure).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    TextMessage,
)
from wsproto.events import Request as WsRequest
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ._h1 import Request

__all__ = ["serve_mounted_websocket"]

CLOSE_TOO_BIG = 1009


def _handshake(request: Request) -> bytes:
    head = [f"GET {request.path} HTTP/1.1".encode("latin-1")]
    if request.query_string:
        head[0] = head[0].replace(b" HTTP/1.1", b"?" + request.query_string + b" HTTP/1.1")
    head.extend(name + b": " + value for name, value in request.headers)
    return b"\r\n".join(head) + b"\r\n\r\n"


class _Bridge:
    def __init__(self, stream: trio.abc.Stream, max_message_size: int) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.max_message_size = max_message_size
        self.lock = trio.Lock()
        self.accepted = False
        self.closed = False
        self.connected = False
        self.pending: list[dict[str, Any]] = []
        self.parts: list[str | bytes] = []
        self.size = 0

    async def write(self, data: bytes) -> None:
        if data:
            async with self.lock:
                await self.stream.send_all(data)

    async def receive(self) -> dict[str, Any]:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while not self.pending:
            if self.closed:
                return {"type": "websocket.disconnect", "code": 1006}
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.closed = True
                return {"type": "websocket.disconnect", "code": 1006}
            self.ws.receive_data(bytes(data))
            await self._events()
        return self.pending.pop(0)

    async def _events(self) -> None:
        try:
            for event in self.ws.events():
                if isinstance(event, TextMessage | BytesMessage):
                    await self._message(event)
                elif isinstance(event, Ping):
                    await self.write(self.ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if not self.closed:
                        await self.write(self.ws.send(event.response()))
                    self.closed = True
                    self.pending.append({"type": "websocket.disconnect", "code": event.code})
        except RemoteProtocolError:
            self.closed = True
            self.pending.append({"type": "websocket.disconnect", "code": 1002})

    async def _message(self, event: TextMessage | BytesMessage) -> None:
        self.size += len(event.data)
        if self.size > self.max_message_size:
            await self.close(CLOSE_TOO_BIG, "message too big")
            self.pending.append({"type": "websocket.disconnect", "code": CLOSE_TOO_BIG})
            return
        self.parts.append(event.data if isinstance(event.data, str) else bytes(event.data))
        if not event.message_finished:
            return
        parts, self.parts, self.size = self.parts, [], 0
        if isinstance(event, TextMessage):
            self.pending.append({"type": "websocket.receive", "text": "".join(map(str, parts))})
        else:
            data = b"".join(p for p in parts if isinstance(p, bytes))
            self.pending.append({"type": "websocket.receive", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.write(self.ws.send(CloseConnection(code, reason)))
        except LocalProtocolError:
            pass  # the client's close came first

    async def send(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind == "websocket.accept":
            headers = [(bytes(k), bytes(v)) for k, v in event.get("headers", ())]
            accept = AcceptConnection(subprotocol=event.get("subprotocol"), extra_headers=headers)
            self.accepted = True
            await self.write(self.ws.send(accept))
        elif kind == "websocket.close" and not self.accepted:
            self.closed = True
            reject = RejectConnection(status_code=403, has_body=False)
            await self.write(self.ws.send(reject))
        elif kind == "websocket.close":
            await self.close(int(event.get("code", 1000)), event.get("reason") or "")
        elif kind == "websocket.send":
            if self.closed:
                raise trio.ClosedResourceError("the WebSocket is closed")
            text = event.get("text")
            message = TextMessage(text) if text is not None else BytesMessage(event["bytes"])
            await self.write(self.ws.send(message))


async def serve_mounted_websocket(
    app: Any,
    prefix: str,
    request: Request,
    stream: trio.abc.Stream,
    rest: bytes,
    max_message_size: int,
) -> None:
    """Run ``app`` (mounted at ``prefix``) on the WebSocket of ``request``."""
    bridge = _Bridge(stream, max_message_size)
    try:
        bridge.ws.receive_data(_handshake(request) + rest)
        handshake = next(iter(bridge.ws.events()), None)
    except RemoteProtocolError:
        handshake = None
    if not isinstance(handshake, WsRequest):
        await stream.send_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        return
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": request.path[len(prefix) :] or "/",
        "raw_path": request.path.encode(),
        "query_string": request.query_string,
        "root_path": prefix,
        "headers": list(request.headers),
        "client": request.client,
        "server": None,
        "subprotocols": list(handshake.subprotocols),
        "state": {},
    }
    try:
        await app(scope, bridge.receive, bridge.send)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await bridge.close(1000, "")
