"""The gateway's ASGI application: a plain callable, no framework.

Routes: the lifespan scope, ``GET /healthz``, ``GET /readyz``, the WebSocket
endpoint, the peers' WebSocket endpoint (``peers_path``), static files, and
404 for the rest.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from ._connection import (
    CLOSE_GOING_AWAY,
    ASGIReceive,
    ASGISend,
    GatewayState,
    WebSocketConnection,
)
from ._peers import AsgiWebSocketStream, limit_session_messages, peer_name
from ._web_metrics import route_of

if TYPE_CHECKING:
    from ..runtime import ActorRef
    from ._config import WebGateway
    from ._wsfast import WsSocket

log = logging.getLogger("trouper.web")

_TEXT_TYPES = ("application/javascript", "application/json", "image/svg+xml")


class OpenSession:
    """Sent by the ASGI handler to the gateway actor: spawn a session."""

    __slots__ = ("connection",)

    def __init__(self, connection: WebSocketConnection) -> None:
        self.connection = connection


class GatewayApp:
    """The ASGI 3 application of one gateway incarnation."""

    def __init__(self, config: WebGateway, state: GatewayState, gateway: ActorRef) -> None:
        self.config = config
        self.state = state
        self.gateway = gateway
        self.static_root = None if config.static_dir is None else config.static_dir.resolve()

    async def __call__(
        self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        kind = scope["type"]
        if kind != "lifespan" and self.config.mounts:
            path = scope["path"]
            for prefix, app in self.config.mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    inner = dict(scope, path=path[len(prefix) :] or "/")
                    inner["root_path"] = scope.get("root_path", "") + prefix
                    await app(inner, receive, send)
                    return
        if kind == "http":
            started = perf_counter()
            try:
                await self._http(scope, send)
            finally:
                config = self.config
                paths = (config.ws_path, config.peers_path)
                route = route_of(scope["path"], paths, self.static_root is not None)
                self.state.metrics.request(route, perf_counter() - started)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # --------------------------------------------------------------- lifespan

    async def _lifespan(self, receive: ASGIReceive, send: ASGISend) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------- http

    async def _http(self, scope: Mapping[str, Any], send: ASGISend) -> None:
        method = scope["method"]
        path = scope["path"]
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", extra=[(b"allow", b"GET, HEAD")])
            return
        state = self.state
        if path == "/healthz":
            await _respond_json(send, 200, {"status": "alive", "node": state.node_id})
        elif path == "/readyz":
            ready = state.ready and not state.stopping
            body = {"status": "ready" if ready else "not-ready", "node": state.node_id}
            await _respond_json(send, 200 if ready else 503, body)
        elif path in (self.config.ws_path, self.config.peers_path):
            await _respond(send, 426, b"upgrade required\n")
        else:
            await self._static(path, send)

    async def _static(self, path: str, send: ASGISend) -> None:
        """A file from ``static_dir`` (hypercorn leaves the body out for HEAD)."""
        file = self._resolve(path)
        body = None
        if file is not None:
            try:
                body = await trio.Path(file).read_bytes()
            except OSError:
                body = None
        if file is None or body is None:
            await _respond(send, 404, b"not found\n")
        else:
            await _respond(send, 200, body, content_type=_content_type(file))

    def _resolve(self, path: str) -> Path | None:
        """The file under ``static_dir`` that ``path`` names, or None: never
        anything outside it (``..``, absolute parts, symlinks out)."""
        root = self.static_root
        if root is None or "\x00" in path or "\\" in path:
            return None
        parts = [p for p in path.split("/") if p]
        if any(p in (".", "..") for p in parts):
            return None
        candidate = root.joinpath(*parts)
        if path.endswith("/") or not parts or candidate.is_dir():
            candidate = candidate / "index.html"
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return None
        return resolved

    # -------------------------------------------------------------- websocket

    async def _websocket(
        self,
        scope: Mapping[str, Any],
        receive: ASGIReceive,
        send: ASGISend,
        socket: WsSocket | None = None,
    ) -> None:
        """One WebSocket, from hypercorn or (``socket``) the gateway's own
        HTTP/1.1 path, which frames it itself (``_wsfast``)."""
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        config = self.config
        if config.peers_path is not None and scope["path"] == config.peers_path:
            await self._peer(scope, receive, send)
            return
        if scope["path"] != config.ws_path or self.state.stopping:
            await send({"type": "websocket.close", "code": 1000})  # before accept: HTTP 403
            return
        if config.peers_path is not None and socket is None:  # hypercorn's limit is the peers'
            receive, send = limit_session_messages(receive, send, config.max_message_size)
        conn = WebSocketConnection(scope, receive, send, config, self.state, socket)
        metrics = self.state.metrics
        counted = False
        try:
            await self.gateway.tell(OpenSession(conn))
            await conn.opened.wait()
            if conn.session is None:  # refused: already logged by the gateway
                await send({"type": "websocket.close", "code": 1011})
                return
            counted = True
            metrics.connections += 1
            metrics.connections_total += 1
            await conn.finished.wait()
        finally:
            if counted:
                metrics.connections -= 1
            if not conn.finished.is_set():
                conn.abandon()  # cancelled: the server is going, the session must too
            with trio.CancelScope(shield=True):
                await self._finish(conn)

    async def _peer(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        """Another node, connecting through ``peers_path``: the node's
        remoting serves it until either side hangs up."""
        state, config = self.state, self.config
        if state.remoting is None or state.stopping:
            await send({"type": "websocket.close", "code": 1000})  # before accept: HTTP 403
            return
        await send({"type": "websocket.accept"})
        stream = AsgiWebSocketStream(
            receive, send, peer_name(scope), config.peers_max_message_size, config.close_timeout
        )
        state.peers.add(stream)
        try:
            await state.remoting.accept(stream)
        finally:
            state.peers.discard(stream)
            await stream.aclose()

    async def _finish(self, conn: WebSocketConnection) -> None:
        """The session is done (or the server is going): close what it did not."""
        if conn.disconnected.is_set() or conn.close_sent:
            return  # hypercorn closes the TCP connection when we return
        timeout = conn.config.close_timeout
        await conn.send_close(CLOSE_GOING_AWAY, "", timeout)
        if not conn.close_delivered:
            return

        async def drain() -> None:
            while True:
                event = await conn.receive()
                if event["type"] == "websocket.disconnect":
                    conn.mark_disconnected(int(event.get("code", 1006)))

        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                await conn.disconnected.wait()
                nursery.cancel_scope.cancel()


def _content_type(file: Path) -> str:
    guessed, _ = mimetypes.guess_type(file.name)
    if file.suffix in (".js", ".mjs"):
        guessed = "text/javascript"
    elif file.suffix == ".wasm":
        guessed = "application/wasm"
    content_type = guessed or "application/octet-stream"
    if content_type.startswith("text/") or content_type in _TEXT_TYPES:
        content_type += "; charset=utf-8"
    return content_type


async def _respond_json(send: ASGISend, status: int, body: Any) -> None:
    data = json.dumps(body).encode() + b"\n"
    await _respond(send, status, data, content_type="application/json")


async def _respond(
    send: ASGISend,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
