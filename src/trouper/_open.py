"""``open_node`` and ``run``: where a node and its remote layer are put together.

The runtime (``trouper.runtime``) is the local kernel and knows nothing of
networks; ``trouper.remote`` is plugged into it here, when the node is given a
cookie. This module is the only place that knows both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio

from ._errors import ConfigurationError
from ._options import check_options
from .observability._agent import DEAD_LETTERS, start_agent
from .observability._config import load_config
from .observability._logformat import configure_from_env
from .observability._server import start_admin
from .observability._tracing import make_tracing
from .remote import REMOTE_OPTIONS, RemoteConfig, Remoting
from .runtime import Node, hosted
from .services import configure as configure_services
from .services._discovery import parse_discovery, start_discovery
from .stores._shared import DEFAULT_MAX_STORES
from .stores._shared import configure as configure_stores
from .supervisors import Strategy
from .transports import TLSConfig

T = TypeVar("T")

_NODE_OPTIONS = (
    "name",
    "mailbox_size",
    "throughput",
    "linger",
    "shutdown_timeout",
    "supervision",
    "seed",
    "listen",
    "seeds",
    "cookie",
    "tls",
    "allow_spawn",
    "discovery",
    "middleware",
    "metrics",
    "admin",
    "admin_token",
    "admin_token_file",
    "tracing",
    "store",
    "max_stores",
)


@asynccontextmanager
async def open_node(
    name: str | None = None,
    *,
    mailbox_size: int = 1000,
    throughput: int = 256,
    linger: int = 2,
    shutdown_timeout: float = 10.0,
    supervision: Strategy | None = None,
    seed: int | None = None,
    listen: str | Sequence[str] = (),
    seeds: Sequence[str] = (),
    cookie: str | bytes | None = None,
    tls: TLSConfig | None = None,
    allow_spawn: Sequence[str] = (),
    discovery: str | None = None,
    middleware: Sequence[Any] = (),
    metrics: bool = True,
    admin: str | None = None,
    admin_token: str | None = None,
    admin_token_file: str | Path | None = None,
    tracing: Any = None,
    store: str = "memory://",
    max_stores: int = DEFAULT_MAX_STORES,
    **remote_options: Any,
) -> AsyncIterator[Node]:
    """Run a node for the duration of the block.

    Leaving the block stops every actor, children first and each level in
    reverse start order, running ``on_stop``; whatever has not stopped after
    ``shutdown_timeout`` seconds is killed.

    With ``cookie`` (and usually ``listen`` or ``seeds``) the node joins a
    cluster: ``listen`` URLs (``tcp://127.0.0.1:0``...), ``seeds`` to dial,
    ``tls`` for ``tls://``/``wss://``/``quic://`` links, ``allow_spawn``
    ("module:Class" globs) for remote spawns, ``discovery`` to find the other
    nodes with no seeds (``"redis://host:port/db?cluster=NAME"`` or
    ``"mdns://NAME"``, see docs/services.md). ``middleware``: the node's service
    middleware chain, run on both sides of every rpc call (docs/services.md).
    ``metrics``: keep the plain counters behind the Prometheus metrics
    (docs/observability.md); off, the hot path counts nothing.
    ``remote_options`` tune the links and their limits (``heartbeat_interval``,
    ``max_frame_size``, ``max_pending_asks``, ``tell_window``, ``rate_limit``...
    see docs/remote.md).

    ``admin="127.0.0.1:9100"`` (port 0: any free port, see
    ``node.admin_address``) serves the admin endpoint: metrics, health, the
    JSON API and, with ``admin_token`` (or ``admin_token_file``), its actions
    (see docs/observability.md).
    ``tracing``: OpenTelemetry spans (None: on when a tracer provider is set;
    True, False, a ``TracerProvider``, or ``"otlp://host:port"``; see
    docs/observability.md).
    ``store``: the URL of the node's default store (``await node.store()``,
    ``await ctx.store()``); each URL's store is opened once per node, on
    first use, and at most ``max_stores`` URLs at once (docs/stores.md).
    """
    check_options(remote_options, [*_NODE_OPTIONS, *sorted(REMOTE_OPTIONS)])
    admin_config = None
    if admin is not None:
        admin_config = await trio.to_thread.run_sync(
            load_config, admin, admin_token, admin_token_file
        )
    elif admin_token is not None or admin_token_file is not None:
        raise ConfigurationError("admin_token needs admin='HOST:PORT' (the admin endpoint)")
    spec = None if discovery is None else parse_discovery(discovery)
    if spec is not None and cookie is None:
        raise ConfigurationError("a node that uses discovery joins a cluster: it needs cookie=...")
    node = Node(
        name=name,
        mailbox_size=mailbox_size,
        throughput=throughput,
        linger=linger,
        shutdown_timeout=shutdown_timeout,
        supervision=supervision,
        seed=seed,
        metrics=metrics,
    )
    configure_stores(node, store, max_stores)
    config = _remote_config(listen, seeds, cookie, tls, allow_spawn, remote_options)
    node.kernel.tracing = make_tracing(tracing, node.id)  # before Remoting, which reads it
    remoting = None if config is None else Remoting(node, config)
    if remoting is not None:
        node.attach_remote(remoting)
    if middleware:
        configure_services(node, middleware)
    configure_from_env()  # TROUPER_LOG=json works for any program (docs/observability.md)
    try:
        async with hosted(node):
            if remoting is not None and spec is not None:
                await start_discovery(remoting, spec)
            if remoting is not None or admin_config is not None:
                # Every clustered node answers admin queries (?node=ID), HTTP or not.
                letters = DEAD_LETTERS if admin_config is None else admin_config.dead_letters
                await start_agent(node, letters)
            if admin_config is not None:
                node.admin = await start_admin(node, admin_config)
            yield node
    finally:
        if node.kernel.tracing is not None:
            await node.kernel.tracing.aclose()  # an otlp:// exporter sends what is left


def _remote_config(
    listen: str | Sequence[str],
    seeds: Sequence[str],
    cookie: str | bytes | None,
    tls: TLSConfig | None,
    allow_spawn: Sequence[str],
    options: dict[str, Any],
) -> RemoteConfig | None:
    listen = (listen,) if isinstance(listen, str) else tuple(listen)
    if isinstance(seeds, str):
        seeds = (seeds,)
    if isinstance(allow_spawn, str):
        allow_spawn = (allow_spawn,)
    if cookie is None:
        if listen or seeds or options or allow_spawn or tls is not None:
            raise ConfigurationError("a node that joins a cluster needs cookie=...")
        return None
    if isinstance(cookie, str):
        cookie = cookie.encode()
    if not isinstance(cookie, bytes):
        raise ConfigurationError(f"cookie must be str or bytes, not {type(cookie).__name__}")
    if tls is not None and not isinstance(tls, TLSConfig):
        raise ConfigurationError(f"tls must be a trouper.TLSConfig, not {tls!r}")
    return RemoteConfig(
        cookie=cookie,
        listen=listen,
        seeds=tuple(seeds),
        tls=tls,
        allow_spawn=tuple(allow_spawn),
        **options,
    )


def run(main: Callable[[Node], Awaitable[T]], **options: Any) -> T:
    """``trio.run`` a node: opens it with ``options`` and returns ``await main(node)``."""

    async def _main() -> T:
        async with open_node(**options) as node:
            return await main(node)

    return trio.run(_main)
