"""The ``postgres://`` store's schema, and its versioned migrations.

``MIGRATIONS[v]`` brings a database from version v-1 to v; a later schema
appends a step and never edits an old one. ``trouper_schema_version`` has
one row per applied step, so a database says which steps it went through
and when.

Two nodes may open the same database for the first time at once. Both run
``migrate`` in one transaction that first takes a transaction-level
advisory lock (``pg_advisory_xact_lock``): the second waits until the
first commits, then finds the steps applied and does nothing. Without the
lock, two concurrent ``CREATE TABLE IF NOT EXISTS`` can still collide on
the system catalogs' unique index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import StoreError

if TYPE_CHECKING:
    from trouper.pools._postgres import PgPool

__all__ = ["LOCK_KEY", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

# An arbitrary 64-bit key, fixed for all trouper versions: "trouper" in ASCII.
LOCK_KEY = 0x74726F75706572

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # The counter lives apart from the records so that trimming (even
        # everything) never lets an id come back.
        "CREATE TABLE trouper_logs (name text PRIMARY KEY, last_id bigint NOT NULL)",
        "CREATE TABLE trouper_records (log text NOT NULL, id bigint NOT NULL,"
        " data bytea NOT NULL, PRIMARY KEY (log, id))",
        # expires_at NULL: no TTL. An expired row reads as absent everywhere;
        # writers overwrite or delete it as they meet it.
        "CREATE TABLE trouper_kv (key text PRIMARY KEY, value bytea NOT NULL,"
        " expires_at timestamptz)",
        # Only keys with a TTL: the sweep of expired keys reads this.
        "CREATE INDEX trouper_kv_expiry ON trouper_kv (expires_at) WHERE expires_at IS NOT NULL",
    ),
}

SCHEMA_VERSION = max(MIGRATIONS)


async def migrate(pool: PgPool, where: str, steps: dict[int, tuple[str, ...]] = MIGRATIONS) -> int:
    """Bring the database up to date; return the number of steps applied (0: none needed)."""
    async with pool.transaction() as tx:
        await tx.execute("SELECT pg_advisory_xact_lock(%s)", LOCK_KEY)
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS trouper_schema_version"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await tx.fetchval("SELECT max(version) FROM trouper_schema_version") or 0
        latest = max(steps)
        if current > latest:
            raise StoreError(
                f"{where} has store schema version {current}; this trouper knows up to"
                f" {latest} (upgrade trouper, or use another database)"
            )
        for version in range(current + 1, latest + 1):
            for statement in steps[version]:
                await tx.execute(statement)
            await tx.execute("INSERT INTO trouper_schema_version (version) VALUES (%s)", version)
        return int(latest - current)
