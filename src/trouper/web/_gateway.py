"""The gateway actor (``/system/web``), ``start_gateway`` and ``open_gateway``.

The gateway serves from its own background nursery, so the server lives and
dies with the actor: stopping it stops every session (its children) first,
then shuts the server down. ``WebGateway(server="trouper")`` (the default)
serves HTTP/1.1 with the gateway's own ``H1Server``, upgrades included;
``server="hypercorn"`` serves the same ``GatewayApp`` with hypercorn's trio
worker (HTTP/2, streaming ASGI mounts), shut down gracefully. Each WebSocket
connection is a child session actor, spawned by the gateway's own task and
``temporary``: a failed session is stopped, never
restarted, and never counts against the gateway's restart intensity.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import hypercorn
import hypercorn.trio
import trio

from .._errors import ConfigurationError, TrouperError
from ..actors import Actor, Terminated, handler
from ..runtime import ActorRef
from ._app import GatewayApp, OpenSession
from ._config import WebGateway
from ._connection import GatewayState, WebSocketConnection, WsOpen
from ._fanout import GATEWAY_NAME, FanOutFrame, send_bytes, send_text
from ._h1 import H1Limits
from ._h1serve import H1Config, H1Server
from ._http import HttpPipeline
from ._peers import peers_url
from ._routes import Routes
from ._upgrade import make_upgrade

if TYPE_CHECKING:
    from ..runtime import Node

log = logging.getLogger("trouper.web")

SEGMENT = "web"


class Gateway(Actor):
    """The actor behind ``/system/web``: owns the server and the sessions."""

    def __init__(self, config: WebGateway, state: GatewayState) -> None:
        self.config = config
        self.state = state
        self._sessions: dict[ActorRef, WebSocketConnection] = {}
        self._name = GATEWAY_NAME.format(state.node_id)
        self._up = trio.Event()
        self._served = trio.Event()
        self._shutdown = trio.Event()
        self._error: BaseException | None = None

    async def on_start(self) -> None:
        self.state.stopping = False
        self.state.close_deadline = None
        self.ctx.start_soon(self._serve)
        await self._up.wait()
        if self._error is not None:
            raise self._error
        # Other nodes hand this gateway the frames of broadcasts to our sessions.
        self.ctx.node.registry.register(self._name, self.ctx.self_ref)

    async def on_stop(self) -> None:
        # The sessions (children) have stopped already.
        self.ctx.node.registry.unregister(self._name)
        self.state.stopping = True
        for conn in self._sessions.values():
            conn.finished.set()
        await self._close_peers()
        self._shutdown.set()
        with trio.move_on_after(self.config.graceful_timeout + 1.0):
            await self._served.wait()

    async def _serve(self) -> None:
        config = self.config
        routes = config.routes if config.routes is not None else Routes()
        pipeline = HttpPipeline(config, self.state, routes, self.ctx.node.kernel.tracing)
        app = GatewayApp(config, self.state, self.ctx.self_ref, pipeline)
        try:
            async with trio.open_nursery() as nursery:
                if config.server == "trouper":
                    await self._serve_fast(app, nursery)
                else:
                    serve = partial(
                        hypercorn.trio.serve,
                        app,
                        self._hypercorn_config(),
                        shutdown_trigger=self._shutdown.wait,
                        mode="asgi",
                    )
                    binds: list[str] = await nursery.start(serve)
                    self._bound(binds)
        except Exception as exc:
            if self._up.is_set():
                raise  # the server failed while serving: the gateway fails
            self._error = exc
        finally:
            self._served.set()
            self._up.set()

    async def _serve_fast(self, app: GatewayApp, nursery: trio.Nursery) -> None:
        """The gateway's own HTTP/1.1 server; returns once it stopped."""
        config = self.config
        listeners = await trio.open_tcp_listeners(self.state.port, host=config.host, backlog=4096)
        h1 = H1Config(
            limits=H1Limits(max_body=config.max_body),
            idle_timeout=config.idle_timeout,
            max_connections=config.max_connections,
        )
        server = H1Server(app.pipeline, h1, upgrade=make_upgrade(app))
        host, port = listeners[0].socket.getsockname()[:2]
        await nursery.start(server.serve_listeners, listeners)
        host = f"[{host}]" if ":" in host else host
        self._bound([f"http://{host}:{port}"])
        await self._shutdown.wait()
        # Requests being answered get graceful_timeout to finish (the
        # sessions have stopped already); then whatever is left is cancelled.
        with trio.move_on_after(config.graceful_timeout):
            await server.drain()
        nursery.cancel_scope.cancel()

    async def _close_peers(self) -> None:
        """Stop advertising the peers' URL and hang up on the peers (1000):
        their remoting sees the end of the stream."""
        state = self.state
        if state.remoting is None or self.config.peers_path is None:
            return
        state.remoting.withdraw(peers_url(state.url, self.config.peers_path))
        async with trio.open_nursery() as nursery:
            for stream in list(state.peers):
                nursery.start_soon(stream.aclose)

    def _hypercorn_config(self) -> hypercorn.Config:
        config = self.config
        host = f"[{config.host}]" if ":" in config.host else config.host
        hconfig = hypercorn.Config()
        hconfig.bind = [f"{host}:{self.state.port}"]
        hconfig.websocket_max_message_size = config.max_message_size
        if config.peers_path is not None:  # sessions then check their own limit
            limit = max(config.max_message_size, config.peers_max_message_size)
            hconfig.websocket_max_message_size = limit
        # Thousands of clients connect at once (a page reload, a reconnect
        # storm): with hypercorn's default backlog of 100 the kernel drops
        # their SYNs while the loop is busy, and each retry waits 1 s, 3 s...
        hconfig.backlog = 4096
        hconfig.graceful_timeout = config.graceful_timeout
        hconfig.accesslog = None
        hconfig.errorlog = logging.getLogger("trouper.web.hypercorn")
        return hconfig

    def _bound(self, binds: list[str]) -> None:
        url = binds[0]
        self.state.url = url
        self.state.port = int(url.rsplit(":", 1)[1])  # a restart keeps the port
        log.info("node %s: web gateway on %s", self.state.node_id, url)
        if self.state.remoting is not None and self.config.peers_path is not None:
            self.state.remoting.advertise(peers_url(url, self.config.peers_path))
        self._up.set()

    @handler
    async def _open_session(self, msg: OpenSession) -> None:
        conn = msg.connection
        config = self.config
        try:
            ref = await self.ctx.spawn(
                config.session,
                conn,
                *config.session_args,
                restart="temporary",
                shutdown=2 * config.close_timeout + 1.0,
            )
        except TrouperError as exc:
            log.error("web gateway: could not start a %s: %r", config.session.__name__, exc)
            conn.opened.set()
            return
        conn.session = ref
        self._sessions[ref] = conn
        self.ctx.watch(ref)
        conn.opened.set()
        await ref.tell(WsOpen())

    @handler
    async def _fan_out(self, msg: FanOutFrame) -> None:
        if msg.data is not None:
            send_bytes(msg.sessions, msg.data)
        elif msg.text is not None:
            send_text(msg.sessions, msg.text)

    @handler
    async def _session_ended(self, msg: Terminated) -> None:
        conn = self._sessions.pop(msg.ref, None)
        if conn is not None:
            conn.finished.set()


class GatewayHandle:
    """A running gateway: its URLs, its readiness switch, and ``aclose``."""

    def __init__(self, node: Node, ref: ActorRef, state: GatewayState, config: WebGateway) -> None:
        self.node = node
        self.ref = ref
        self.config = config
        self._state = state

    @property
    def url(self) -> str:
        """The bound base URL, ``http://127.0.0.1:PORT`` (port 0 resolved)."""
        return self._state.url

    @property
    def ws_url(self) -> str:
        """The WebSocket endpoint, ``ws://127.0.0.1:PORT/ws``."""
        return "ws" + self._state.url[len("http") :] + self.config.ws_path

    @property
    def peers_url(self) -> str | None:
        """Where other nodes connect (``ws://127.0.0.1:PORT/_trouper``), if
        the gateway has a ``peers_path``."""
        path = self.config.peers_path
        return None if path is None else peers_url(self._state.url, path)

    @property
    def routes(self) -> Routes:
        """The gateway's routes (``WebGateway.routes``)."""
        assert self.config.routes is not None  # start_gateway made one
        return self.config.routes

    def route(self, path: str, handler: Any = None, **options: Any) -> Any:
        """``Routes.route`` on the gateway's routes: a call or a decorator;
        the route serves at once."""
        return self.routes.route(path, handler, **options)

    @property
    def ready(self) -> bool:
        return self._state.ready

    def set_ready(self, ready: bool) -> None:
        """What ``GET /readyz`` answers: 200 when ready, 503 when not."""
        self._state.ready = ready

    async def aclose(self) -> None:
        """Stop the gateway: its sessions close (1001), then the server stops."""
        await self.node.stop(self.ref)

    def __repr__(self) -> str:
        return f"<GatewayHandle {self.url} ready={self.ready}>"


async def start_gateway(
    node: Node, config: WebGateway | None = None, **options: Any
) -> GatewayHandle:
    """Start the web gateway of ``node`` as ``/system/web``; returns once it serves.

    ``options`` override fields of ``config`` (``start_gateway(node, port=8080)``).
    """
    if config is None:
        config = WebGateway(**options)
    elif options:
        config = attrs.evolve(config, **options)
    if config.routes is None:
        config = attrs.evolve(config, routes=Routes())
    existing = node.kernel.cell_at(f"/system/{SEGMENT}")
    if existing is not None:
        raise ConfigurationError(f"node {node.id} runs a web gateway already ({existing.ref})")
    if config.peers_path is not None and node.remote is None:
        raise ConfigurationError(
            "WebGateway.peers_path lets other nodes connect: open the node with a cookie"
        )
    state = GatewayState(node.id, config.port, node.remote)
    # A shutdown time that covers the sessions' shared close budget and the
    # server's graceful shutdown.
    ref = await node.kernel.spawn_system(
        None,
        Gateway,
        config,
        state,
        restart="transient",
        shutdown=config.close_timeout + config.graceful_timeout + 3.0,
        segment=SEGMENT,
    )
    return GatewayHandle(node, ref, state, config)


@asynccontextmanager
async def open_gateway(
    node: Node, config: WebGateway | None = None, **options: Any
) -> AsyncIterator[GatewayHandle]:
    """``async with open_gateway(node, config) as gw:`` the gateway runs in the block."""
    handle = await start_gateway(node, config, **options)
    try:
        yield handle
    finally:
        with trio.CancelScope(shield=True):
            await handle.aclose()
