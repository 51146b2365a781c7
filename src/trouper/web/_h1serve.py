"""The gateway's own HTTP/1.1 server on trio: one task per connection.

Why not hypercorn for every request: its trio worker spends about 1.5 ms of
machinery per request here (a nursery, cancel scopes and ASGI events per
request); this loop costs one parse, one handler call and one ``send_all``
per batch of pipelined requests. There is no per-request nursery and one
cancel scope per connection, whose deadline is moved (the idle timeout is
suspended while a handler runs, so only the client's silence is timed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._h1 import H1Error, H1Limits, H1Parser, Request, Response, serialize

__all__ = ["H1Config", "H1Server", "Handler", "UpgradeHandler"]

log = logging.getLogger("trouper.web")

Handler = Callable[[Request], Awaitable[Response]]
UpgradeHandler = Callable[[Request, trio.abc.Stream, bytes], Awaitable[None]]


@attrs.frozen
class H1Config:
    """Bounds of the HTTP/1.1 server (documented in docs/web.md)."""

    limits: H1Limits = attrs.field(factory=H1Limits)
    idle_timeout: float = 30.0  # a keep-alive connection silent this long is closed
    read_size: int = 64 * 1024
    max_connections: int = 20_000


class H1Server:
    """Serves ``handler`` on accepted streams; ``upgrade`` takes WebSocket upgrades."""

    def __init__(
        self,
        handler: Handler,
        config: H1Config | None = None,
        upgrade: UpgradeHandler | None = None,
    ) -> None:
        self.handler = handler
        self.config = config or H1Config()
        self.upgrade = upgrade
        self.connections = 0
        self.requests = 0
        self.refused = 0

    async def serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await trio.serve_listeners(self.serve_stream, listeners, task_status=task_status)

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        if self.connections >= self.config.max_connections:
            self.refused += 1
            await trio.aclose_forcefully(stream)
            return
        self.connections += 1
        try:
            await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: nothing to answer
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        config = self.config
        parser = H1Parser(config.limits)
        client = _peer(stream)
        with trio.CancelScope() as idle:
            idle.deadline = trio.current_time() + config.idle_timeout
            while True:
                data = await stream.receive_some(config.read_size)
                if not data:
                    return
                try:
                    requests = parser.feed(bytes(data))
                except H1Error as exc:
                    body = f"{exc.status} {exc}\n"
                    await stream.send_all(serialize(Response(body, exc.status), keep_alive=False))
                    return
                if not requests:
                    continue
                idle.deadline = math.inf  # a slow handler is not an idle client
                out: list[bytes] = []
                keep_alive = True
                for request in requests:
                    request.client = client
                    if request.upgrade and self.upgrade is not None:
                        if out:
                            await stream.send_all(b"".join(out))
                        idle.deadline = math.inf
                        await self.upgrade(request, stream, parser.rest)
                        return
                    response = await self._handle(request)
                    keep_alive = request.keep_alive
                    out.append(serialize(response, keep_alive, request.method == "HEAD"))
                    if not keep_alive:
                        break
                await stream.send_all(b"".join(out) if len(out) > 1 else out[0])
                if not keep_alive:
                    return
                idle.deadline = trio.current_time() + config.idle_timeout

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        try:
            return await self.handler(request)
        except Exception:
            # The router maps every error it knows; this is a bug in a handler
            # or middleware: log it here, never show it to the client.
            log.exception("unhandled error answering %s %s", request.method, request.path)
            return Response("500 Internal Server Error\n", 500)


def _peer(stream: trio.abc.Stream) -> tuple[str, int] | None:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return None
    return (str(host), int(port))
