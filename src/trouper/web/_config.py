"""``WebGateway``: the configuration of a node's web gateway."""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from .._errors import ConfigurationError
from ._auth import JWTAuth
from ._h1 import H1Limits
from ._middleware import CORS
from ._ratelimit import RateLimit
from ._routes import Routes
from ._session import WebSocketSession

SERVERS = ("trouper", "hypercorn")


def _check_positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"WebGateway.{attribute.name} must be positive, got {value!r}")


def _check_session(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, type) and issubclass(value, WebSocketSession)):
        raise ConfigurationError(f"WebGateway.session must subclass WebSocketSession: {value!r}")


def _check_path(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value.startswith("/"):
        raise ConfigurationError(f"WebGateway.ws_path must start with '/': {value!r}")


def _check_peers_path(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    if not value.startswith("/"):
        raise ConfigurationError(f"WebGateway.peers_path must start with '/': {value!r}")
    if value == instance.ws_path:
        raise ConfigurationError(f"WebGateway.peers_path and ws_path are both {value!r}")


def _check_port(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ConfigurationError(f"WebGateway.port must be in 0..65535, got {value!r}")


def _to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _to_mounts(value: Any) -> tuple[tuple[str, Any], ...]:
    items = value.items() if hasattr(value, "items") else value
    mounts = tuple((str(prefix), app) for prefix, app in items)
    for prefix, app in mounts:
        if not prefix.startswith("/") or prefix.endswith("/") or not callable(app):
            raise ConfigurationError(
                f"WebGateway.mounts maps '/prefix' (no trailing '/') to an ASGI app: {prefix!r}"
            )
    return mounts


def _default_server() -> str:
    # One switch for a whole process (the test suite runs every gateway test
    # on both servers through it). Without the fast WebSocket path in the
    # tree (``_wsfast``), the default stays hypercorn, whose WebSockets work.
    return os.environ.get("TROUPER_WEB_SERVER") or _built_in_default()


@functools.cache
def _built_in_default() -> str:
    return "trouper" if importlib.util.find_spec("trouper.web._wsfast") else "hypercorn"


def _check_server(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in SERVERS:
        raise ConfigurationError(f"WebGateway.server is one of {SERVERS}, got {value!r}")


def _check_middleware(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    for mw in value:
        if not callable(mw):
            raise ConfigurationError(f"WebGateway.middleware holds callables: {mw!r}")


def _to_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen
class WebGateway:
    """How ``start_gateway`` serves HTTP and WebSockets.

    ``port=0`` binds a free port (``GatewayHandle.url`` tells which; it is kept
    across restarts of the gateway). Each WebSocket connection to ``ws_path``
    is an actor of class ``session`` (created as ``session(connection,
    *session_args)``) under ``/system/web``.

    A session's outbox holds ``outbox_size`` messages and ``outbox_bytes``
    bytes of payload (one larger message still goes into an empty outbox);
    a client that leaves it full for ``slow_consumer_timeout`` seconds is
    disconnected (code 1008,
    reason ``consumer-too-slow``). A client frame larger than
    ``max_message_size`` bytes closes the connection with code 1009. At most
    ``inbox_size`` received frames wait for the session at a time (then the
    socket stops being read: backpressure). ``close_timeout`` bounds a
    closing handshake; ``graceful_timeout`` bounds the server's shutdown.

    ``peers_path`` (e.g. ``"/_trouper"``) lets other nodes connect through
    the gateway's port: a WebSocket upgrade there is a trouper peer, handed
    to the node's remoting (it needs ``open_node(cookie=...)``), and the node
    advertises ``ws://host:port/peers_path`` among its addresses while the
    gateway serves. Peers send binary messages of up to
    ``peers_max_message_size`` bytes (the runtime's 16 MiB frames, and some);
    sessions keep their own ``max_message_size``.

    ``mounts`` (``{"/admin": AdminApp(node, token)}``) serves other ASGI
    applications on the gateway's port: a request under a prefix goes to its
    app with the prefix moved from ``path`` to ``root_path``.

    ``server``: ``"trouper"`` (the default, or the ``TROUPER_WEB_SERVER``
    environment variable; hypercorn while the fast WebSocket path is not in
    the tree) serves HTTP/1.1 with the gateway's own server;
    ``"hypercorn"`` serves everything through hypercorn (HTTP/2, ASGI mounts
    that stream their responses). ``routes`` (a ``Routes``; the gateway makes
    an empty one when None) holds the typed HTTP routes; ``middleware``,
    ``cors``, ``rate_limit`` and ``auth`` make the middleware chain
    (docs/web.md). A request body over ``max_body`` bytes is refused (413)
    before it is read. On the fast path, a keep-alive connection silent for
    ``idle_timeout`` seconds is closed, and at most ``max_connections`` are
    served at once (a further one is closed on accept). ``openapi`` serves
    ``/openapi.json`` (``title``, ``version``); static files carry
    ``static_cache_control``.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=0, validator=_check_port)
    static_dir: Path | None = attrs.field(default=None, converter=_to_path)
    ws_path: str = attrs.field(default="/ws", validator=_check_path)
    outbox_size: int = attrs.field(default=256, validator=_check_positive)
    outbox_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_check_positive)
    slow_consumer_timeout: float = attrs.field(default=5.0, validator=_check_positive)
    max_message_size: int = attrs.field(default=64 * 1024, validator=_check_positive)
    session: type[WebSocketSession] = attrs.field(
        default=WebSocketSession, validator=_check_session
    )
    session_args: tuple[Any, ...] = attrs.field(default=(), converter=_to_tuple)
    inbox_size: int = attrs.field(default=16, validator=_check_positive)
    close_timeout: float = attrs.field(default=2.0, validator=_check_positive)
    graceful_timeout: float = attrs.field(default=2.0, validator=_check_positive)
    peers_path: str | None = attrs.field(default=None, validator=_check_peers_path)
    peers_max_message_size: int = attrs.field(default=17 * 1024 * 1024, validator=_check_positive)
    mounts: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=_to_mounts)
    server: str = attrs.field(factory=_default_server, validator=_check_server)
    routes: Routes | None = None
    middleware: tuple[Any, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_check_middleware
    )
    cors: CORS | None = None
    rate_limit: RateLimit | None = None
    auth: JWTAuth | None = None
    max_body: int = attrs.field(default=H1Limits().max_body, validator=_check_positive)
    idle_timeout: float = attrs.field(default=30.0, validator=_check_positive)
    max_connections: int = attrs.field(default=20_000, validator=_check_positive)
    openapi: bool = True
    title: str = "trouper gateway"
    version: str = "0.1.0"
    static_cache_control: str = "no-cache"
