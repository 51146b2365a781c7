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

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

from trouper._errors import ConfigurationError
from trouper.stores._errors import StoreError

from ._pg_conn import PgConnection, Row
from ._pg_errors import StoreUnavailable, map_exceptions
from ._policy import PoolPolicy, PoolStatus
from ._resource import ResourcePool, open_resource_pool

__all__ = ["PgPool", "PgTransaction", "postgres"]

# How long a ROLLBACK after a failed or cancelled transaction may take before
# the connection is given up (closing it rolls back on the server anyway).
_ROLLBACK_TIMEOUT = 5.0


class _Replace(Exception):
    """Raised inside a checkout to make the pool close a member found broken."""


def _is_broken(exc: BaseException) -> bool:
    return isinstance(exc, _Replace | StoreUnavailable)


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
                        raise _Replace
                    yield conn
                    return
            except _Replace:
                continue
        raise StoreUnavailable(f"{self._where}: every connection checked out was broken")

    async def _call(self, method: str, query: str, args: Sequence[Any]) -> Any:
        async with self._member(None) as conn:
            return await getattr(conn, method)(query, args)

    @asynccontextmanager
    async def transaction(self, timeout: float | None = None) -> AsyncIterator[PgTransaction]:
        """``async with pool.transaction() as tx``: one connection, one transaction.

        Commits when the block ends normally; rolls back when it raises or
        is cancelled (the exception then propagates). ``timeout`` bounds the
        wait for a connection (default: the pool's ``checkout_timeout``).
        """
        async with self._member(timeout) as conn:
            await conn.execute("BEGIN", ())
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


def _describe(url: str) -> str:
    """``postgres host:port/db`` for messages and the pool's name: never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        with map_exceptions("postgres"):
            info = conninfo_to_dict(url)
    except StoreError as exc:
        raise ConfigurationError(f"malformed PostgreSQL URL: {exc.__cause__}") from None
    host, port, db = info.get("host", "localhost"), info.get("port", 5432), info.get("dbname", "")
    if not all(p.strip().isdigit() for p in str(port).split(",")):
        raise ConfigurationError(f"PostgreSQL URL has a bad port {port!r}")
    return f"postgres {host}:{port}/{db}"


_URL_OPTIONS = {"min": int, "max": int, "checkout_timeout": float}


def _url_options(url: str) -> tuple[str, dict[str, Any]]:
    """Take trouper's options (``?min=2&max=20&checkout_timeout=1``) out of a
    URL; libpq gets the rest (it refuses parameters it does not know)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    if not url.startswith(("postgres://", "postgresql://")) or "?" not in url:
        return url, {}
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    for key, text in pairs:
        if key in _URL_OPTIONS:
            try:
                options[key] = _URL_OPTIONS[key](text)
            except ValueError:
                kind = _URL_OPTIONS[key].__name__
                raise ConfigurationError(
                    f"PostgreSQL URL option {key}={text!r} is not an {kind}"
                ) from None
    rest = [(k, v) for k, v in pairs if k not in _URL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), options


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
    if not isinstance(url, str):
        raise ConfigurationError(f"a PostgreSQL URL must be a str, not {type(url).__name__}")
    url, options = _url_options(url)
    if policy is None:
        min = options.get("min", 1) if min is None else min
        max = options.get("max", 10) if max is None else max
        policy = PoolPolicy(min=min, max=max)
    elif min is not None or max is not None:
        raise ConfigurationError("give either policy= or min=/max=, not both")
    if checkout_timeout is None:
        checkout_timeout = options.get("checkout_timeout", 5.0)
    timeouts = {"checkout_timeout": checkout_timeout, "connect_timeout": connect_timeout}
    for name, value in timeouts.items():
        if not value > 0:  # also refuses NaN
            raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
    for name, value in (("leak_after", leak_after), ("health_every", health_every)):
        if value is not None and not value > 0:
            raise ConfigurationError(f"{name} must be > 0 seconds or None, got {value!r}")
    where = _describe(url)

    async def open_member() -> PgConnection:
        return await PgConnection.open(url, connect_timeout=connect_timeout, where=where)

    async def close_member(conn: PgConnection) -> None:
        await conn.close()

    async def check_member(conn: PgConnection) -> None:
        if conn.broken or conn.closed:
            raise StoreUnavailable(f"{where}: connection is no longer usable")
        with trio.fail_after(connect_timeout):
            await conn.fetchval("SELECT 1", ())

    @asynccontextmanager
    async def manage() -> AsyncIterator[PgPool]:
        raised: BaseException | None = None
        try:
            async with open_resource_pool(
                where,
                open=open_member,
                close=close_member,
                check=check_member,
                is_broken=_is_broken,
                policy=policy,
                checkout_timeout=checkout_timeout,
                leak_after=leak_after,
                health_every=health_every,
            ) as pool:
                try:
                    yield PgPool(pool, where, policy)
                except BaseException as exc:
                    raised = exc
                    raise
        except BaseExceptionGroup as group:
            # The pool's nursery wraps what the block raised: give the
            # caller back its own exception, as if there were no nursery.
            if raised is None or list(group.exceptions) != [raised]:
                raise
        if raised is not None:
            raise raised

    return manage()
