"""The gateway's ASGI application: a plain callable, no framework.

Routes: the lifespan scope, ``GET /healthz``, ``GET /readyz``, the WebSocket
endpoint, the peers' WebSocket endpoint (``peers_path``), static files, and
404 for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from ._asgi import request_from_scope, send_response
from ._connection import (
    CLOSE_GOING_AWAY,
    ASGIReceive,
    ASGISend,
    GatewayState,
    WebSocketConnection,
)
from ._h1 import H1Error
from ._http import HttpPipeline
from ._peers import AsgiWebSocketStream, limit_session_messages, peer_name
from ._routes import Routes
from ._statuses import json_error

if TYPE_CHECKING:
    from ..runtime import ActorRef
    from ._config import WebGateway
    from ._wsfast import WsSocket

log = logging.getLogger("trouper.web")


class OpenSession:
    """Sent by the ASGI handler to the gateway actor: spawn a session."""

    __slots__ = ("connection",)

    def __init__(self, connection: WebSocketConnection) -> None:
        self.connection = connection


class GatewayApp:
    """The ASGI 3 application of one gateway incarnation."""

    def __init__(
        self,
        config: WebGateway,
        state: GatewayState,
        gateway: ActorRef,
        pipeline: HttpPipeline | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.gateway = gateway
        if pipeline is None:
            pipeline = HttpPipeline(config, state, config.routes or Routes())
        self.pipeline = pipeline

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
            await self._http(scope, receive, send)
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

    async def _http(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        """The gateway's HTTP pipeline (routes, middleware, static files)."""
        try:
            request = await request_from_scope(scope, receive, self.config.max_body)
        except H1Error as exc:
            await send_response(send, json_error(exc.status, "too-large", str(exc)), False)
            return
        response = await self.pipeline(request)
        await send_response(send, response, request.method == "HEAD")

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
