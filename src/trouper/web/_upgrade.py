"""Upgrade requests on the gateway's fast path.

``H1Server`` hands every request with ``Upgrade:`` to this callback, which
owns the connection from then on. WebSocket upgrades on ``ws_path`` and
``peers_path`` go to the fast WebSocket path,
``trouper.web._wsfast.serve_upgrade(app, request, stream, rest)``, given the
``GatewayApp`` (the gateway's config, state and actor ref, what the ASGI
path's ``WebSocketConnection`` is made from). Until that module exists, they
are answered 501: such a gateway needs ``server="hypercorn"`` for its
WebSockets. A WebSocket under a mounted app's prefix goes to that app
(``_asgiws``); any other upgrade (``h2c``...) is not taken: the request is
answered as plain HTTP/1.1, then the connection closes.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ._asgiws import serve_mounted_websocket
from ._h1 import Request, serialize
from ._statuses import json_error

if TYPE_CHECKING:
    from ._app import GatewayApp

__all__ = ["make_upgrade"]

Upgrade = Callable[[Request, trio.abc.Stream, bytes], Awaitable[None]]


def _fast_websockets() -> Any:
    """``serve_upgrade`` of the fast WebSocket path, or None without it."""
    try:
        module = importlib.import_module("trouper.web._wsfast")
    except ImportError:
        return None
    return getattr(module, "serve_upgrade", None)


def make_upgrade(app: GatewayApp) -> Upgrade:
    config = app.config
    websocket_paths = {config.ws_path, config.peers_path} - {None}
    serve_upgrade = _fast_websockets()

    async def upgrade(request: Request, stream: trio.abc.Stream, rest: bytes) -> None:
        is_websocket = (request.header("upgrade") or "").lower() == "websocket"
        if request.path in websocket_paths and is_websocket:
            if serve_upgrade is not None:
                await serve_upgrade(app, request, stream, rest)
                return
            message = "WebSockets are served with WebGateway(server='hypercorn') in this build"
            response = json_error(501, "not-implemented", message, request)
        elif is_websocket:
            mount = next((m for m in app.pipeline.mounts if m.covers(request.path)), None)
            if mount is not None:
                size = config.max_message_size
                await serve_mounted_websocket(mount.app, mount.prefix, request, stream, rest, size)
                return
            response = json_error(404, "not-found", "no WebSocket endpoint here", request)
        else:
            response = await app.pipeline(request)
        await stream.send_all(serialize(response, False, request.method == "HEAD"))

    return upgrade
