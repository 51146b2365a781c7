"""``trouper.pools.postgres(url)``: a PostgreSQL connection pool for Trio.

Built on the shared ``ResourcePool`` (sizing policy, checkout timeout,
health checks of idle members, leak reclaim, drain); each member is a
``PgConnection``: one psycopg 3 sync connection driven by its own thread
(``_pg_conn``), so no query ever blocks the Trio loop.

Queries take psycopg's ``%s`` placeholders and positional arguments, sent
to the server as bind parameters (never spliced into the SQL text)::

    await pool.fetchval("SELECT total FROM orders WHERE user_id = %s", user_id)

``$1``-style placeholders are not accepted: psycopg rewrites ``%s`` into
``$n`` itself, and one placeholder syntax means one set of quoting rules (a
literal ``%`` is written ``%%`` when the query has arguments).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

from trouper._errors import ConfigurationError
from trouper.stores._errors import StoreError

from ._pg_conn import PgConnection, Row
from ._pg_errors import StoreUnavailable
from ._pg_settings import Replace, Settings, settings
from ._policy import PoolPolicy, PoolStatus
from ._resource import ResourcePool, open_resource_pool

__all__ = ["PgPool", "PgTransaction", "open_configured", "postgres", "postgres_pool"]

log = logging.getLogger("trouper.pools")

_ISOLATION = ("read committed", "repeatable read", "serializable")

# How long a ROLLBACK after a failed or cancelled transaction may take before
# the connection is given up (closing it rolls back on the server anyway).
_ROLLBACK_TIMEOUT = 5.0


class _Queries:
    """``execute``/``fetch``/``fetchrow``/``fetchval``, shared by the pool and transactions."""

    async def _call(self, method: str, query: str, args: Sequence[Any]) -> Any:
        raise NotImplementedError

    async def execute(self, query: str, *args: Any) -> int:
        """Run a statement; return the number of rows it affected (-1 when not applicable)."""
        result: int = await self._call("execute", query, args)
        return result

    async def fetch(self, query: str, *args: Any) -> list[Row]:
        """All rows, as tuples."""
        result: list[Row] = await self._call("fetch", query, args)
        return result

    async def fetchrow(self, query: str, *args: Any) -> Row | None:
        """The first row, or None."""
        result: Row | None = await self._call("fetchrow", query, args)
        return result

    async def fetchval(self, query: str, *args: Any) -> Any:
        """The first column of the first row, or None."""
        return await self._call("fetchval", query, args)


class PgTransaction(_Queries):
    """The connection of one ``pool.transaction()`` block; usable only inside it."""

    def __init__(self, conn: PgConnection, where: str) -> None:
        self._conn = conn
        self._where = where
        self.done = False

    async def _call(self, method: str, query: str, args: Sequence[Any]) -> Any:
        if self.done:
            raise StoreError(f"{self._where}: transaction used after its block ended")
        return await getattr(self._conn, method)(query, args)


class PgPool(_Queries):
    """A pool of PostgreSQL connections; get one with ``trouper.pools.postgres(url)``.

    Each call checks a connection out for one statement (autocommit);
    ``transaction()`` keeps one for a whole block.
    """

    def __init__(self, pool: ResourcePool[PgConnection], where: str, policy: PoolPolicy) -> None:
        self._pool = pool
        self._where = where
        self._policy = policy

    @property
    def name(self) -> str:
        return self._where

    @asynccontextmanager
    async def _member(self, timeout: float | None) -> AsyncIterator[PgConnection]:
        # A member broken by a cancelled call went back idle (the exception
        # was Cancelled, which is no reason to distrust other members): it is
        # recognised and replaced here, at most once per possible member.
        for _ in range(self._policy.max + 1):
            try:
                async with self._pool.checkout(timeout) as conn:
                    if conn.broken or conn.closed:
                        raise Replace
                    yield conn
                    return
            except Replace:
                continue
        raise StoreUnavailable(f"{self._where}: every connection checked out was broken")

    async def _call(self, method: str, query: str, args: Sequence[Any]) -> Any:
        async with self._member(None) as conn:
            return await getattr(conn, method)(query, args)

    def transaction(
        self,
        timeout: float | None = None,
        *,
        isolation: str | None = None,
        read_only: bool = False,
    ) -> AbstractAsyncContextManager[PgTransaction]:
        """``async with pool.transaction() as tx``: one connection, one transaction.

        Commits when the block ends normally; rolls back when it raises or
        is cancelled (the exception then propagates). ``timeout`` bounds the
        wait for a connection (default: the pool's ``checkout_timeout``).
        ``isolation`` is ``"read committed"`` (PostgreSQL's default),
        ``"repeatable read"`` or ``"serializable"``; a serializable
        transaction may fail with the retryable ``TransactionConflict``.
        """
        begin = "BEGIN"
        if isolation is not None:
            if not isinstance(isolation, str) or isolation.lower() not in _ISOLATION:
                raise ConfigurationError(
                    f"isolation must be one of {', '.join(_ISOLATION)}, not {isolation!r}"
                )
            begin += f" ISOLATION LEVEL {isolation.upper()}"  # one of three known strings
        if read_only:
            begin += " READ ONLY"
        return self._transaction(timeout, begin)

    @asynccontextmanager
    async def _transaction(self, timeout: float | None, begin: str) -> AsyncIterator[PgTransaction]:
        async with self._member(timeout) as conn:
            await conn.execute(begin, ())
            tx = PgTransaction(conn, self._where)
            try:
                yield tx
            except BaseException:
                tx.done = True
                await _rollback(conn)
                raise
            tx.done = True
            await conn.run(_commit)

    def status(self) -> PoolStatus:
        return self._pool.status()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The pool's own task, for a pool made by ``postgres_pool()``: start it
        in a nursery or an actor's ``ctx.start_soon``. It opens ``min``
        connections, sizes, checks and reclaims; cancelled (the actor
        stopped or failed), it closes every connection."""
        await self._pool.run(task_status=task_status)

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new checkouts, wait up to ``timeout`` for the active ones, close all."""
        await self._pool.drain(timeout)


def _commit(conn: Any) -> None:
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status == TransactionStatus.INERROR:
        # A statement failed and the block caught the error: PostgreSQL
        # would answer COMMIT with a silent ROLLBACK. Say so instead.
        conn.execute("ROLLBACK")
        raise StoreError("a statement of this transaction failed: it was rolled back")
    conn.execute("COMMIT")


async def _rollback(conn: PgConnection) -> None:
    if conn.broken or conn.closed:
        return  # the connection is discarded: the server rolls back when it goes
    with trio.CancelScope(shield=True):  # a cancelled block must still roll back
        with trio.move_on_after(_ROLLBACK_TIMEOUT):
            try:
                await conn.execute("ROLLBACK", ())
            except StoreError:
                conn.broken = True
            return
        conn.broken = True


def postgres(
    url: str,
    *,
    min: int | None = None,
    max: int | None = None,
    checkout_timeout: float | None = None,
    leak_after: float | None = None,
    health_every: float | None = 30.0,
    connect_timeout: float = 10.0,
    policy: PoolPolicy | None = None,
) -> AbstractAsyncContextManager[PgPool]:
    """Open a pool of connections to the PostgreSQL server at ``url``.

    ``async with trouper.pools.postgres("postgresql://app@db/orders", min=2, max=20) as pool``
    opens ``min`` connections, grows up to ``max`` under load (the sizing
    policy of docs/pools.md; pass ``policy=`` for its other thresholds
    instead of ``min``/``max``), and drains on exit. ``checkout_timeout``
    bounds a call's wait for a free connection (``PoolTimeout``);
    ``leak_after`` reclaims a checkout held longer (logging the stack that
    took it); ``health_every`` checks idle connections with ``SELECT 1``.
    Driver errors arrive as ``StoreError`` subclasses (``StoreUnavailable``,
    ``TransactionConflict``... see ``_pg_errors``). The URL may carry
    ``min``, ``max`` and ``checkout_timeout`` as query options (as a store
    URL does); the arguments win over them.
    """
    config = settings(
        url,
        min=min,
        max=max,
        checkout_timeout=checkout_timeout,
        leak_after=leak_after,
        health_every=health_every,
        connect_timeout=connect_timeout,
        policy=policy,
    )
    return open_configured(config)


def open_configured(config: Settings) -> AbstractAsyncContextManager[PgPool]:
    """``postgres()`` on settings already parsed (the ``postgres://`` store's)."""

    @asynccontextmanager
    async def manage() -> AsyncIterator[PgPool]:
        async with open_resource_pool(config.where, **config.resource) as pool:
            yield PgPool(pool, config.where, config.policy)

    return manage()


def postgres_pool(
    url: str,
    *,
    min: int | None = None,
    max: int | None = None,
    checkout_timeout: float | None = None,
    leak_after: float | None = None,
    health_every: float | None = 30.0,
    connect_timeout: float = 10.0,
    policy: PoolPolicy | None = None,
) -> PgPool:
    """A pool as ``postgres()`` makes it, not yet running: its owner runs
    ``pool.run()`` in a task of its own, typically an actor's
    ``ctx.start_soon(pool.run)``, so the pool lives and dies (and is
    restarted) with that actor under its supervisor."""
    config = settings(
        url,
        min=min,
        max=max,
        checkout_timeout=checkout_timeout,
        leak_after=leak_after,
        health_every=health_every,
        connect_timeout=connect_timeout,
        policy=policy,
    )
    pool: ResourcePool[PgConnection] = ResourcePool(config.where, **config.resource)
    return PgPool(pool, config.where, config.policy)
