"""``ConnectionPool``: message sessions to one URL, lent and returned.

Built on the pool core (``trouper.pools.ResourcePool``), so it grows and
shrinks with the same ``PoolPolicy`` as the worker and database pools. What
this module adds is what a *session* needs:

* a session comes back usable only if it is still open and neither end has
  ended its messages; otherwise it is closed and replaced, and so is a
  session whose checkout ended in a ``TransportError`` (short of the two
  that leave a session intact: ``FrameTooLarge`` on send, ``SendTimeout``);
* the health check of an idle session reads for ``probe`` seconds: an
  idle session should receive nothing, so the end (the peer closed) or an
  unsolicited message both mean it is not safe to lend. Reads are
  cancel-safe (a partly read message stays buffered), so the probe's
  timeout loses nothing;
* the sessions' writer tasks run in the pool's own nursery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from trouper._errors import (
    ConfigurationError,
    ConnectionLost,
    FrameTooLarge,
    RemoteProtocolError,
    SendTimeout,
    TransportError,
)
from trouper.pools import PoolPolicy, PoolStatus, ResourcePool

from ._connect import DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_SEND_BUFFER, SessionOptions, open_session
from ._credentials import TLSSource
from ._session import MessageSession

__all__ = ["ConnectionPool"]


class _Unusable(Exception):
    """Raised inside a checkout to make the core discard the session."""


def _is_broken(exc: BaseException) -> bool:
    if isinstance(exc, _Unusable):
        return True
    return isinstance(exc, TransportError) and not isinstance(exc, FrameTooLarge | SendTimeout)


class ConnectionPool:
    """A self-sizing pool of ``MessageSession``s to ``url``.

    ``async with ConnectionPool(url, min=1, max=16) as pool:`` opens ``min``
    sessions, then ``async with pool.checkout() as session:`` lends one
    (waiting at most ``checkout_timeout``, else ``trouper.PoolTimeout``;
    ``trouper.PoolClosed`` after ``drain``). ``policy`` replaces ``min`` and
    ``max`` with a whole ``PoolPolicy``. The session options (``tls``,
    ``max_message_size``, ...) are ``connect``'s.
    """

    def __init__(
        self,
        url: str,
        *,
        min: int | None = None,
        max: int | None = None,
        policy: PoolPolicy | None = None,
        tls: TLSSource | None = None,
        checkout_timeout: float = 5.0,
        health_every: float | None = 30.0,
        probe: float = 0.01,
        leak_after: float | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        send_buffer: int = DEFAULT_SEND_BUFFER,
        connect_timeout: float = 10.0,
        close_timeout: float = 5.0,
        name: str | None = None,
    ) -> None:
        if policy is not None and (min is not None or max is not None):
            raise ConfigurationError("give either policy= or min=/max=, not both")
        if policy is None:
            policy = PoolPolicy(min=1 if min is None else min, max=16 if max is None else max)
        if not isinstance(probe, int | float) or not probe > 0:
            raise ConfigurationError(f"probe must be > 0 seconds, got {probe!r}")
        self.url = url
        self._tls = tls
        self._probe = probe
        self._options = SessionOptions(
            max_message_size, send_buffer, connect_timeout, close_timeout
        )
        self._nursery: trio.Nursery | None = None
        self._stack: AsyncExitStack | None = None
        self._pool: ResourcePool[MessageSession] = ResourcePool(
            name or f"connections to {url}",
            open=self._open_one,
            close=self._close_one,
            check=self._check_one,
            is_broken=_is_broken,
            policy=policy,
            checkout_timeout=checkout_timeout,
            leak_after=leak_after,
            health_every=health_every,
        )

    def __repr__(self) -> str:
        status = self._pool.status()
        return f"<ConnectionPool {self.url} size={status.size} active={status.active}>"

    async def _open_one(self) -> MessageSession:
        if self._nursery is None:
            raise ConfigurationError("use the pool inside `async with ConnectionPool(...)`")
        return await open_session(self.url, self._tls, self._options, self._nursery)

    async def _close_one(self, session: MessageSession) -> None:
        await session.aclose()

    async def _check_one(self, session: MessageSession) -> None:
        if not _reusable(session):
            raise ConnectionLost(f"session {session.id} is closed or ended")
        with trio.move_on_after(self._probe):
            message = await session.receive()
            if message is None:
                raise ConnectionLost(f"{session.remote_address} ended session {session.id}")
            raise RemoteProtocolError(
                f"{session.remote_address} sent {len(message)} bytes on idle session {session.id}"
            )

    def checkout(self, timeout: float | None = None) -> AbstractAsyncContextManager[MessageSession]:
        """Borrow a session for the ``async with`` block."""
        return self._checkout(timeout)

    @asynccontextmanager
    async def _checkout(self, timeout: float | None) -> AsyncIterator[MessageSession]:
        try:
            async with self._pool.checkout(timeout) as session:
                yield session
                if not _reusable(session):
                    raise _Unusable
        except _Unusable:
            pass

    def status(self) -> PoolStatus:
        return self._pool.status()

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new checkouts, wait up to ``timeout`` for the lent sessions,
        then close every session."""
        await self._pool.drain(timeout)

    async def __aenter__(self) -> ConnectionPool:
        stack = AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await self._pool.fill()  # a bad URL fails here, as itself
            await self._nursery.start(self._pool.run)
        except BaseException:
            self._nursery.cancel_scope.cancel()
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._stack is not None and self._nursery is not None
        stack, self._stack = self._stack, None
        try:
            with trio.CancelScope(shield=True):
                await self._pool.drain(self._options.close_timeout)
        finally:
            self._nursery.cancel_scope.cancel()
            await stack.aclose()


def _reusable(session: MessageSession) -> bool:
    return not session.closed and not session.ended
