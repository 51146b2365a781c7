"""``postgres://`` and ``postgresql://``: a store in a PostgreSQL database.

Every call is one or a few statements on a ``trouper.pools.postgres`` pool
(psycopg 3, one thread per connection: the Trio loop never waits on the
database). Opening the store applies the schema migrations (``_pg_schema``),
safe from several nodes at once.

Ids: ``trouper_logs`` keeps each log's last id, and an append bumps it
with ``INSERT ... ON CONFLICT DO UPDATE`` in the same statement that
inserts the record. The row lock on the counter is held until commit, so
concurrent appenders (any process, any node) get consecutive ids in commit
order, and trimming never lets an id come back.

TTL: ``expires_at`` is computed by the server's clock
(``clock_timestamp()``), so nodes with skewed clocks agree on expiry; an
expired key reads as absent in ``get``, ``compare_and_set``, ``delete``
and fences, and is overwritten by the next write.

Cancellation: a call cancelled mid-statement is cancelled on the server
and its connection discarded (``trouper.pools``); a cancelled write may
still have committed, as with any remote write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from trouper._errors import ConfigurationError, PoolClosed, PoolTimeout

from . import _errors
from ._api import Store
from ._base import BaseStore
from ._errors import StoreBusy, StoreError, StoreUnavailable
from ._pg_schema import migrate

if TYPE_CHECKING:
    from trouper.pools._postgres import PgPool, PgTransaction

__all__ = ["PostgresStore", "open_postgres_store"]

_LIVE = "(expires_at IS NULL OR expires_at > clock_timestamp())"

_APPEND = """
WITH n AS (
    INSERT INTO trouper_logs AS l (name, last_id) VALUES (%s, 1)
    ON CONFLICT (name) DO UPDATE SET last_id = l.last_id + 1
    RETURNING last_id)
INSERT INTO trouper_records (log, id, data) SELECT %s, last_id, %s FROM n RETURNING id
"""

# The fence row is locked FOR SHARE: a compare_and_set that would take the
# fence away waits until this append commits, and an append that arrives
# after it re-reads the new value and writes nothing.
_FENCED_APPEND = f"""
WITH fence AS (
    SELECT 1 FROM trouper_kv WHERE key = %s AND value = %s AND {_LIVE} FOR SHARE),
n AS (
    INSERT INTO trouper_logs AS l (name, last_id)
    SELECT %s, 1 WHERE EXISTS (SELECT 1 FROM fence)
    ON CONFLICT (name) DO UPDATE SET last_id = l.last_id + 1
    RETURNING last_id)
INSERT INTO trouper_records (log, id, data) SELECT %s, last_id, %s FROM n RETURNING id
"""

_TRIM = """
DELETE FROM trouper_records WHERE log = %s AND id <= (
    SELECT id FROM trouper_records WHERE log = %s ORDER BY id DESC LIMIT 1 OFFSET %s)
"""

# ttl NULL gives expires_at NULL: no expiry.
_EXPIRES = "clock_timestamp() + %s * interval '1 second'"

# Each write also deletes up to SWEEP expired keys (not its own: a statement
# may not change one row twice), so keys that expire and are never touched
# again do not pile up. SKIP LOCKED: a sweep never waits for another writer.
SWEEP = 100
_SWEPT = f"""
WITH swept AS (DELETE FROM trouper_kv WHERE key IN (
    SELECT key FROM trouper_kv WHERE expires_at <= clock_timestamp() AND key <> %s
    LIMIT {SWEEP} FOR UPDATE SKIP LOCKED))
"""

_PUT = f"""{_SWEPT}
INSERT INTO trouper_kv (key, value, expires_at) VALUES (%s, %s, {_EXPIRES})
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""


@contextmanager
def _pool_errors(pool: PgPool) -> Iterator[None]:
    """Pool errors as store errors: above a store, code sees only ``StoreError``."""
    try:
        yield
    except PoolTimeout as exc:
        # No connection came free. With none busy, none could be opened:
        # the server is unreachable. Otherwise all are busy. Retryable both.
        cls: type[StoreError] = StoreUnavailable if pool.status().active == 0 else StoreBusy
        raise cls(f"{pool.name}: {exc}") from exc
    except PoolClosed as exc:
        raise StoreError(f"{pool.name}: the store is closed") from exc


class _Pool:
    """The store's view of its pool: the same calls, with ``_pool_errors`` applied."""

    def __init__(self, pool: PgPool) -> None:
        self.pool = pool

    async def execute(self, query: str, *args: Any) -> int:
        with _pool_errors(self.pool):
            return await self.pool.execute(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with _pool_errors(self.pool):
            return await self.pool.fetch(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        with _pool_errors(self.pool):
            return await self.pool.fetchval(query, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        with _pool_errors(self.pool):
            async with self.pool.transaction() as tx:
                yield tx


def _stale(text: str) -> StoreError:
    return _errors.StaleWriter(text)


class PostgresStore(BaseStore):
    """A store in one PostgreSQL database, on a connection pool."""

    backend = "postgres"

    def __init__(self, pool: PgPool, where: str) -> None:
        super().__init__()
        self._pool = _Pool(pool)
        self.where = where

    async def _do_append(
        self, log: str, record: bytes, fence: tuple[str, bytes] | None = None
    ) -> int:
        if fence is None:
            new_id = await self._pool.fetchval(_APPEND, log, log, record)
        else:
            key, token = fence
            new_id = await self._pool.fetchval(_FENCED_APPEND, key, token, log, log, record)
            if new_id is None:
                raise _stale(
                    f"{self.where}: {key!r} no longer holds this writer's token:"
                    f" nothing was appended to {log!r}"
                )
        return int(new_id)

    async def _do_tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        rows = await self._pool.fetch(
            "SELECT id, data FROM trouper_records WHERE log = %s ORDER BY id DESC LIMIT %s", log, n
        )
        return [(int(i), bytes(d)) for i, d in reversed(rows)]

    async def _do_read(self, log: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self._pool.fetch(
            "SELECT id, data FROM trouper_records WHERE log = %s AND id > %s ORDER BY id LIMIT %s",
            log,
            after_id,
            limit,
        )
        return [(int(i), bytes(d)) for i, d in rows]

    async def _do_trim(self, log: str, keep_last: int) -> int:
        deleted: int = await self._pool.execute(_TRIM, log, log, keep_last)
        return deleted

    async def _do_get(self, key: str) -> bytes | None:
        value = await self._pool.fetchval(
            f"SELECT value FROM trouper_kv WHERE key = %s AND {_LIVE}", key
        )
        return None if value is None else bytes(value)

    async def _do_put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._pool.execute(_PUT, key, key, value, ttl)

    async def _do_delete(self, key: str) -> bool:
        live = await self._pool.fetchval(
            f"DELETE FROM trouper_kv WHERE key = %s RETURNING {_LIVE}", key
        )
        return bool(live)

    async def _do_compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None = None
    ) -> bool:
        async with self._pool.transaction() as tx:
            # FOR UPDATE: a concurrent compare_and_set on the same key waits
            # here and then sees this one's result (READ COMMITTED re-reads).
            row = await tx.fetchrow(
                f"SELECT value, {_LIVE} FROM trouper_kv WHERE key = %s FOR UPDATE", key
            )
            current = None if row is None or not row[1] else bytes(row[0])
            if current != expected:
                return False
            if new is None:
                if row is not None:
                    await tx.execute("DELETE FROM trouper_kv WHERE key = %s", key)
                return True
            if row is not None:
                await tx.execute(
                    f"UPDATE trouper_kv SET value = %s, expires_at = {_EXPIRES} WHERE key = %s",
                    new,
                    ttl,
                    key,
                )
                return True
            # No row to lock: two inserters race on the primary key, and the
            # loser (rowcount 0) reports that the key was not absent after all.
            inserted: int = await tx.execute(
                f"{_SWEPT} INSERT INTO trouper_kv (key, value, expires_at)"
                f" VALUES (%s, %s, {_EXPIRES}) ON CONFLICT (key) DO NOTHING",
                key,
                key,
                new,
                ttl,
            )
            return inserted == 1

    async def _do_close(self) -> None:
        pass  # the pool is closed by open_postgres_store's context manager


def open_postgres_store(url: str) -> AbstractAsyncContextManager[Store]:
    """``open_store`` factory for ``postgres://`` and ``postgresql://`` URLs.

    The store's pool runs in the nursery of this context manager, so the
    store must be opened and closed by one task (a node's shared store is:
    its host actor holds it in a task of its own).
    """
    from trouper.pools._pg_settings import settings
    from trouper.pools._postgres import open_configured

    _, _, rest = url.partition("://")
    if not rest:
        raise ConfigurationError(
            "malformed PostgreSQL store URL: use postgres://user[:password]@host[:port]/database"
        )
    config = settings(f"postgresql://{rest}")  # libpq knows both schemes; one is enough

    @asynccontextmanager
    async def manage() -> AsyncIterator[Store]:
        async with open_configured(config) as pool:
            with _pool_errors(pool):
                await migrate(pool, pool.name)
            store = PostgresStore(pool, pool.name)
            try:
                yield store
            finally:
                await store.aclose()

    return manage()
