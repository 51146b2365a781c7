"""The admin actor (``/system/admin``) and ``start_admin``.

The actor serves ``AdminApp`` with hypercorn's trio worker from its own
background nursery, so the server lives and dies with the actor, as the web
gateway does; it is a supervised system actor, restarted (on the same port)
if the server fails. The answers to other nodes (``/api/tree?node=ID``) and
the dead-letter collection are the admin agent's (``/system/observer``, see
``_agent``), which every clustered node runs; this actor shares its
``AdminState``.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import trio

from .._errors import ConfigurationError, SpawnRefused
from ..actors import Actor
from ._agent import start_agent
from ._api import AdminState
from ._app import AdminApp
from ._config import AdminConfig

if TYPE_CHECKING:
    from ..runtime import ActorRef, Node

log = logging.getLogger("trouper.admin")

SEGMENT = "admin"


class AdminActor(Actor):
    """The actor behind ``/system/admin``: the HTTP server."""

    def __init__(self, config: AdminConfig, state: AdminState) -> None:
        self.config = config
        self.state = state
        self._up = trio.Event()
        self._served = trio.Event()
        self._shutdown = trio.Event()
        self._error: BaseException | None = None

    async def on_start(self) -> None:
        self.state.stopping = False
        self.ctx.start_soon(self._serve)
        await self._up.wait()
        if self._error is not None:
            raise self._error

    async def on_stop(self) -> None:
        self.state.stopping = True
        self._shutdown.set()
        with trio.move_on_after(self.config.graceful_timeout + 1.0):
            await self._served.wait()

    async def _serve(self) -> None:
        import hypercorn
        import hypercorn.trio

        config = self.config
        app = AdminApp(
            self.ctx.node, config.token, state=self.state, timeout=config.request_timeout
        )
        hconfig = hypercorn.Config()
        host = f"[{config.host}]" if ":" in config.host else config.host
        hconfig.bind = [f"{host}:{self.state.port}"]
        hconfig.graceful_timeout = config.graceful_timeout
        hconfig.accesslog = None
        hconfig.errorlog = logging.getLogger("trouper.admin.hypercorn")
        serve = partial(
            hypercorn.trio.serve, app, hconfig, shutdown_trigger=self._shutdown.wait, mode="asgi"
        )
        try:
            async with trio.open_nursery() as nursery:
                binds: list[str] = await nursery.start(serve)
                self._bound(binds[0])
        except Exception as exc:
            if self._up.is_set():
                raise  # the server failed while serving: the actor fails
            cause: BaseException = exc
            while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
                cause = cause.exceptions[0]  # the OSError inside hypercorn's nursery
            why = f"the admin endpoint cannot listen on {config.host}:{self.state.port}: {cause}"
            self.state.error = why
            self._error = ConfigurationError(why)
        finally:
            self._served.set()
            self._up.set()

    def _bound(self, url: str) -> None:
        self.state.url = url
        self.state.port = int(url.rsplit(":", 1)[1])  # a restart keeps the port
        log.info("node %s: admin endpoint on %s", self.state.node_id, url)
        self._up.set()


class AdminHandle:
    """A running admin endpoint: its URL and ``aclose``."""

    def __init__(self, node: Node, ref: ActorRef, state: AdminState) -> None:
        self.node = node
        self.ref = ref
        #: What the endpoint keeps (its URL, the recent dead letters).
        self.state = state

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (port 0 resolved)."""
        return self.state.url or ""

    @property
    def address(self) -> str:
        """``HOST:PORT``, as ``--admin`` takes it."""
        return self.url.split("://", 1)[1]

    async def aclose(self) -> None:
        await self.node.stop(self.ref)

    def __repr__(self) -> str:
        return f"<AdminHandle {self.url}>"


async def start_admin(node: Node, config: AdminConfig) -> AdminHandle:
    """Start the admin endpoint of ``node`` as ``/system/admin``; returns
    once it listens. Needs hypercorn (the ``web`` or ``admin`` extra)."""
    try:
        import hypercorn.trio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "the admin endpoint needs hypercorn: pip install 'trouper[admin]'"
        ) from None
    if node.kernel.cell_at(f"/system/{SEGMENT}") is not None:
        raise ConfigurationError(f"node {node.id} runs an admin endpoint already")
    state = await start_agent(node, config.dead_letters)  # open_node started it already
    state.port = config.port
    state.error = None
    try:
        ref = await node.kernel.spawn_system(
            None,
            AdminActor,
            config,
            state,
            restart="transient",
            shutdown=config.graceful_timeout + 3.0,
            segment=SEGMENT,
        )
    except SpawnRefused:
        if state.error is None:
            raise
        raise ConfigurationError(state.error) from None
    return AdminHandle(node, ref, state)
