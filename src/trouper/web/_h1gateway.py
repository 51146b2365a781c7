"""The gateway on its own HTTP/1.1 server (``WebGateway(server="trouper")``).

``serve_h1`` binds the gateway's port with ``H1Server``: WebSocket upgrades
go to ``serve_upgrade`` (``_wsfast``), which frames them itself; plain
requests go to the gateway's ASGI app through ``asgi_handler``, a small
bridge that runs one ASGI ``http`` exchange and collects its response.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import trio

from ._app import GatewayApp
from ._h1 import Request, Response
from ._h1serve import H1Server
from ._wsfast import serve_upgrade

__all__ = ["asgi_handler", "serve_h1"]

#: Thousands of clients connect at once (a reload, a reconnect storm): a
#: short backlog makes the kernel drop SYNs, and each retry waits seconds.
BACKLOG = 4096


async def asgi_handler(app: Any, request: Request) -> Response:
    """Answer ``request`` with the ASGI application ``app``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": request.version,
        "method": request.method,
        "scheme": "http",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query_string,
        "root_path": "",
        "headers": list(request.headers),
        "client": request.client,
        "server": None,
    }
    delivered = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        await trio.lowlevel.checkpoint()
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": request.body, "more_body": False}

    async def send(event: dict[str, Any]) -> None:
        nonlocal status, headers
        await trio.lowlevel.checkpoint()
        if event["type"] == "http.response.start":
            status = int(event["status"])
            headers = list(event.get("headers") or ())
        elif event["type"] == "http.response.body":
            chunks.append(bytes(event.get("body") or b""))

    await app(scope, receive, send)
    kept = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in headers
        if name.lower() not in (b"content-length", b"connection", b"date")
    ]
    return Response(b"".join(chunks), status, kept)


async def serve_h1(
    app: GatewayApp,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``host:port`` until ``shutdown``; started with the bound URL."""
    server = H1Server(partial(asgi_handler, app), upgrade=partial(serve_upgrade, app))
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=BACKLOG)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_listeners, listeners)
        bound = listeners[0].socket.getsockname()
        name = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        task_status.started([f"http://{name}:{bound[1]}"])
        await shutdown.wait()
        nursery.cancel_scope.cancel()
