"""The gateway's own HTTP/1.1 server on trio: one task per connection.

Why not hypercorn for every request: its trio worker spends about 1.5 ms of
machinery per request here (a nursery, cancel scopes and ASGI events per
request); this loop costs one parse, one handler call and one ``send_all``
per batch of pipelined requests. There is no per-request nursery and one
cancel scope per connection, whose deadline is moved (the idle timeout is
suspended while a handler runs, so only the client's silence is timed).

``drain`` is the graceful stop: no more accepting, connections waiting for
a request closed at once, the requests being answered finished (each then
answered with ``connection: close``); the caller bounds it in time and then
cancels what is left.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._h1 import H1Error, H1Limits, H1Parser, Request, Response, serialize

__all__ = ["H1Config", "H1Server", "Handler", "UpgradeHandler"]

log = logging.getLogger("trouper.web")

_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}

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
        self.active = 0  # requests in a handler now
        self.draining = False
        self._accepting = trio.CancelScope()
        # Each connection's scope, and whether it waits for the client.
        self._connections: dict[trio.CancelScope, bool] = {}
        self._idle = trio.Event()

    async def serve_listeners(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept on ``listeners`` until cancelled; ``drain`` stops accepting."""
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery)
            task_status.started(listeners)

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        async with listener:
            with self._accepting:
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as exc:
                        if exc.errno not in _CAPACITY_ERRNOS:
                            raise
                        # Out of file descriptors: retry later, as trio does.
                        log.error("accept failed (%s); retrying in 0.1 s", exc)
                        await trio.sleep(0.1)
                    else:
                        nursery.start_soon(self.serve_stream, stream)

    async def drain(self) -> None:
        """Stop accepting, close the connections waiting for a request, and
        return once the requests being answered are answered (their
        connections then close). Time it out from outside."""
        self.draining = True
        self._accepting.cancel()
        for scope, waiting in self._connections.items():
            if waiting:
                scope.cancel()
        while self.active:
            self._idle = trio.Event()
            await self._idle.wait()

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        if self.connections >= self.config.max_connections or self.draining:
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
        connections = self._connections
        with trio.CancelScope() as idle:
            # True while waiting for the client: what ``drain`` may cancel.
            connections[idle] = True
            try:
                idle.deadline = trio.current_time() + config.idle_timeout
                while True:
                    data = await stream.receive_some(config.read_size)
                    if not data:
                        return
                    try:
                        requests = parser.feed(bytes(data))
                    except H1Error as exc:
                        body = f"{exc.status} {exc}\n"
                        response = Response(body, exc.status)
                        await stream.send_all(serialize(response, keep_alive=False))
                        return
                    if parser.continue_pending:  # the client waits before sending the body
                        parser.continue_pending = False
                        await stream.send_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    if not requests:
                        continue
                    connections[idle] = False
                    idle.deadline = math.inf  # a slow handler is not an idle client
                    out: list[bytes] = []
                    keep_alive = True
                    for request in requests:
                        request.client = client
                        if request.upgrade and self.upgrade is not None:
                            if out:
                                await stream.send_all(b"".join(out))
                            del connections[idle]
                            await self.upgrade(request, stream, parser.rest)
                            return
                        response = await self._handle(request)
                        keep_alive = request.keep_alive and not self.draining
                        out.append(serialize(response, keep_alive, request.method == "HEAD"))
                        if not keep_alive:
                            break
                    # A client that does not read its answers is as idle as
                    # one that sends nothing: the write is timed too.
                    idle.deadline = trio.current_time() + config.idle_timeout
                    await stream.send_all(b"".join(out) if len(out) > 1 else out[0])
                    if not keep_alive:
                        return
                    connections[idle] = True
            finally:
                connections.pop(idle, None)

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        self.active += 1
        try:
            return await self.handler(request)
        except Exception:
            # The router maps every error it knows; this is a bug in a handler
            # or middleware: log it here, never show it to the client.
            log.exception("unhandled error answering %s %s", request.method, request.path)
            return Response("500 Internal Server Error\n", 500)
        finally:
            self.active -= 1
            if not self.active:
                self._idle.set()


def _peer(stream: trio.abc.Stream) -> tuple[str, int] | None:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    try:
        host, port = sock.getpeername()[:2]
    except OSError:
        return None
    return (str(host), int(port))
