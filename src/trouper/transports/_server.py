"""``serve(url, handler)``: the server side of the message API.

The listener is the transport's own ``serve``; each accepted connection
becomes a ``MessageSession`` handed to ``handler(session)`` in that
connection's task, which the transport runs in its listener nursery (so
every handler is supervised by the server, never bare). A handler that
raises is logged and closes its own session only.

Each connection task runs its handler inside a *shielded* cancel scope that
the server keeps: cancelling the listener then stops accepting without
touching the handlers, which is what ``graceful_shutdown`` needs (except on
QUIC, see ``_SHARED_SOCKET``); the server
cancels those scopes itself when it is stopped for good (``aclose``, the
``async with`` block ending, or the nursery around it being cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from trouper._errors import ConfigurationError, TransportError

from ._address import parse_address
from ._connect import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_SEND_BUFFER,
    SessionOptions,
    describe_peer,
)
from ._credentials import TLSSource
from ._registry import get_transport
from ._session import MessageSession, start_session

__all__ = ["MessageServer", "ServerStatistics", "SessionHandler", "graceful_shutdown", "serve"]

logger = logging.getLogger("trouper.transports")

# Transports whose connections all share the listening socket (QUIC: one UDP
# socket routes every connection's packets): stopping the listener would cut
# the running handlers off, so a graceful shutdown keeps it until they are
# done and closes new connections at once instead.
_SHARED_SOCKET = frozenset({"quic"})

SessionHandler = Callable[[MessageSession], Awaitable[None]]


@attrs.frozen
class ServerStatistics:
    url: str
    accepting: bool
    active: int  # sessions whose handler is running
    accepted: int
    refused: int  # connections closed at once: max_sessions were active
    failed: int  # handlers that raised
    max_sessions: int


class MessageServer:
    """A listening server; ``serve`` makes one and runs it (see there)."""

    def __init__(
        self,
        url: str,
        handler: SessionHandler,
        *,
        tls: TLSSource | None,
        max_sessions: int,
        options: SessionOptions,
    ) -> None:
        if not callable(handler):
            raise ConfigurationError(f"handler must be an async callable, got {handler!r}")
        if not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1:
            raise ConfigurationError(f"max_sessions must be an int >= 1, got {max_sessions!r}")
        self._address = parse_address(url)
        self._transport = get_transport(self._address.scheme)
        options.check_transport(self._transport)
        self._handler = handler
        self._tls = tls
        self._options = options
        self._max_sessions = max_sessions
        self.url = url  # the bound URL once listening (port 0 resolved)
        self._sessions: dict[str, MessageSession] = {}
        self._scopes: set[trio.CancelScope] = set()
        self._handler_tasks: set[trio.lowlevel.Task] = set()
        self._run_scope = trio.CancelScope()
        self._accept_scope = trio.CancelScope()
        self._accepting = False
        self._draining = False  # graceful_shutdown began: new connections are refused
        self._stopping = False  # for good: new handler scopes start cancelled
        self._handler_ended = trio.lowlevel.ParkingLot()
        self._done = trio.Event()
        self._started = False
        self._active = self._accepted = self._refused = self._failed = 0

    def __repr__(self) -> str:
        return f"<MessageServer {self.url} active={self._active}>"

    @property
    def sessions(self) -> list[MessageSession]:
        """The sessions whose handlers are running."""
        return list(self._sessions.values())

    @property
    def accepting(self) -> bool:
        """False once ``graceful_shutdown`` began: handlers may finish up."""
        return self._accepting

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            url=self.url,
            accepting=self._accepting,
            active=self._active,
            accepted=self._accepted,
            refused=self._refused,
            failed=self._failed,
            max_sessions=self._max_sessions,
        )

    async def run(
        self, *, task_status: trio.TaskStatus[MessageServer] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen until stopped; ``task_status.started(self)`` once bound."""
        if self._started:
            raise ConfigurationError("a MessageServer runs once; make a new one with serve()")
        self._started = True
        try:
            with self._run_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guard)
                    self.url = await nursery.start(self._listen)
                    self._accepting = True
                    logger.debug("message server listening on %s", self.url)
                    task_status.started(self)
        finally:
            self._accepting = False
            self._done.set()

    async def _guard(self) -> None:
        # Handlers are shielded from the listener; this is what reaches them
        # when the whole server is cancelled.
        try:
            await trio.sleep_forever()
        finally:
            self._stop_handlers()

    def _stop_handlers(self) -> None:
        self._stopping = True
        for scope in self._scopes:
            scope.cancel()

    async def _listen(
        self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with self._accept_scope:
            await self._transport.serve(
                self._address, self._on_stream, tls=self._tls, task_status=task_status
            )

    async def _on_stream(self, stream: trio.abc.Stream) -> None:
        """One accepted connection (the transport closes ``stream`` after)."""
        peer = describe_peer(self._address.scheme, stream)
        if self._draining or self._stopping:
            return  # a graceful shutdown began (over quic the socket stays open)
        if self._active >= self._max_sessions:
            self._refused += 1
            logger.warning(
                "refused %s: %d sessions are active (max_sessions)", peer, self._max_sessions
            )
            return
        scope = trio.CancelScope(shield=True)
        self._scopes.add(scope)
        task = trio.lowlevel.current_task()
        self._handler_tasks.add(task)
        self._active += 1
        self._accepted += 1
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    session = self._options.session(self._address.scheme, stream, peer, "s")
                    start_session(session, nursery)
                    self._sessions[session.id] = session
                    try:
                        await self._run_handler(session)
                    finally:
                        del self._sessions[session.id]
                        await session.aclose()
        finally:
            self._scopes.discard(scope)
            self._handler_tasks.discard(task)
            self._active -= 1
            self._handler_ended.unpark_all()

    async def _run_handler(self, session: MessageSession) -> None:
        try:
            await self._handler(session)
        except TransportError as exc:  # the peer or the network: expected, no traceback
            logger.warning("session %s from %s ended: %s", session.id, session.remote_address, exc)
        except Exception:
            self._failed += 1
            logger.exception(
                "handler for session %s from %s failed", session.id, session.remote_address
            )

    async def graceful_shutdown(self, timeout: float = 30.0) -> None:
        """Stop accepting, give running handlers up to ``timeout`` seconds to
        return, then cancel the rest (their sessions are closed). Returns once
        the server has stopped. Call it from outside the server's handlers
        (it waits for them)."""
        if not isinstance(timeout, int | float) or not timeout >= 0:
            raise ConfigurationError(f"timeout must be a number >= 0, got {timeout!r}")
        self._refuse_from_handler("graceful_shutdown")
        self._accepting = False
        self._draining = True
        if self._address.scheme not in _SHARED_SOCKET:
            self._accept_scope.cancel()
        try:
            with trio.move_on_after(timeout):
                while self._active:
                    await self._handler_ended.park()
        finally:
            await self._finish()

    def _refuse_from_handler(self, what: str) -> None:
        if trio.lowlevel.current_task() in self._handler_tasks:
            raise ConfigurationError(
                f"server.{what}() from inside one of its handlers would wait for itself;"
                " call it from another task (e.g. one started in the nursery around the server)"
            )
        if not self._started:
            raise ConfigurationError(f"server.{what}(): the server was never started")

    async def aclose(self) -> None:
        """Stop now: close the listener and cancel every handler."""
        self._refuse_from_handler("aclose")
        self._accepting = False
        self._draining = True
        await self._finish()

    async def _finish(self) -> None:
        # Cancel the handlers and let them close their sessions *before*
        # the listener goes: over QUIC the listener's socket carries the
        # close of every connection (without it a close waits out its linger).
        self._stop_handlers()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._options.close_timeout):
                while self._active:
                    await self._handler_ended.park()
            self._run_scope.cancel()
            await self._done.wait()


class _Serving:
    """What ``serve`` returns: use it with ``async with``, or await it."""

    def __init__(self, server: MessageServer, nursery: trio.Nursery | None) -> None:
        self._server = server
        self._nursery = nursery
        self._stack: AsyncExitStack | None = None

    def __await__(self) -> Generator[Any, None, MessageServer]:
        return self._start().__await__()

    async def _start(self) -> MessageServer:
        if self._nursery is None:
            raise ConfigurationError(
                "await serve(...) needs nursery=: the server runs in it"
                " (or use async with serve(...))"
            )
        server: MessageServer = await self._nursery.start(self._server.run)
        return server

    async def __aenter__(self) -> MessageServer:
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await nursery.start(self._server.run)
        except BaseException:
            await stack.aclose()  # the error stays ungrouped
            raise
        self._stack = stack
        return self._server

    async def __aexit__(self, *exc_info: Any) -> None:
        # Stop the server, then leave the nursery with nothing to report: the
        # block's own exception propagates as itself, not in a group.
        assert self._stack is not None
        stack, self._stack = self._stack, None
        try:
            await self._server.aclose()
        finally:
            await stack.aclose()


def serve(
    url: str,
    handler: SessionHandler,
    *,
    tls: TLSSource | None = None,
    max_sessions: int = 1024,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    send_buffer: int = DEFAULT_SEND_BUFFER,
    close_timeout: float = 5.0,
    nursery: trio.Nursery | None = None,
) -> _Serving:
    """Listen on ``url``, running ``handler(session)`` per connection.

    ``async with serve(url, handler) as server:`` owns the server's nursery
    and stops it (cancelling handlers) when the block ends; ``server = await
    serve(url, handler, nursery=nursery)`` runs it in the caller's nursery
    until ``server.aclose()`` or ``graceful_shutdown``. ``server.url`` is the
    bound URL (port 0 resolved). At most ``max_sessions`` handlers run at
    once; a connection beyond that is closed at once (and counted).
    """
    options = SessionOptions(max_message_size, send_buffer, 10.0, close_timeout)
    server = MessageServer(url, handler, tls=tls, max_sessions=max_sessions, options=options)
    return _Serving(server, nursery)


async def graceful_shutdown(server: MessageServer, timeout: float = 30.0) -> None:
    """``server.graceful_shutdown(timeout)``, as a function."""
    await server.graceful_shutdown(timeout)
