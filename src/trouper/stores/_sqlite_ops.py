"""The synchronous half of the sqlite store: schema and one function per operation.

Everything here runs in the store's worker thread, on a connection opened in
autocommit mode (``isolation_level=None``), so transactions are exactly the
ones written here. Every write takes ``BEGIN IMMEDIATE``: it grabs the write
lock up front (waiting up to the busy timeout) instead of upgrading a read
transaction later, so two processes can never both read ``last_id = 7`` and
both write id 8; the loser waits instead of failing with a snapshot error.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import StaleWriter, StoreError, is_busy

__all__ = ["SCHEMA_VERSION", "connect"]

SCHEMA_VERSION = 2

# Migration steps: _MIGRATIONS[v] brings a database from version v-1 to v.
# A later schema appends a step; it never edits an old one.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # One row per log that ever had a record: the counter lives apart from
        # the records so trimming (even everything) never lets an id come back.
        "CREATE TABLE logs (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TABLE records (log TEXT NOT NULL, id INTEGER NOT NULL,"
        " data BLOB NOT NULL, PRIMARY KEY (log, id))",
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    ),
    2: (
        # ttl=: wall-clock seconds (time.time) at which the key reads as
        # absent; NULL never expires. Wall time, not monotonic: several
        # processes (on one host) compare it.
        "ALTER TABLE kv ADD COLUMN expires_at REAL",
        # Partial: only keys with a ttl are in it, so sweeping expired keys
        # costs nothing when nobody uses ttl.
        "CREATE INDEX kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL",
    ),
}

#: Expired keys deleted per write at most (a sweep never makes one write slow).
_SWEEP_BATCH = 100


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    conn.execute("COMMIT")


def connect(path: Path, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: trio's thread cache may run each call on a
    # different OS thread; the store's CapacityLimiter(1) guarantees only one
    # of them touches the connection at a time, which is all sqlite needs.
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        # WAL: readers never block the writer and vice versa, and a commit is
        # one append to the log file. It is a property of the file, so the
        # first process to open it sets it for everyone.
        _use_wal(conn, time.monotonic() + busy_timeout)
        # NORMAL in WAL mode survives any crash of the process (what a node
        # restart needs); only an OS crash or power cut may lose the last
        # commits. FULL is available for those who need it.
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, deadline: float) -> None:
    # Switching the journal mode needs an exclusive lock and sqlite does NOT
    # call the busy handler for it: two processes creating the same file at
    # once get an immediate "database is locked". So retry by hand, within
    # the same busy timeout the other statements get.
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.005)  # in the worker thread, never on the Trio loop


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with _write(conn):  # concurrent first opens serialise here
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} has store schema version {version}; this trouper knows up to"
                f" {SCHEMA_VERSION} (upgrade trouper, or use another file)"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[step]:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )


def append(
    conn: sqlite3.Connection,
    log: str,
    record: bytes,
    fence: tuple[str, bytes] | None = None,
    now: float = 0.0,
) -> int:
    with _write(conn):
        # The fence is read inside the write transaction: no other writer can
        # change the owner key between this check and the insert.
        if fence is not None and get(conn, fence[0], now) != fence[1]:
            raise StaleWriter(f"{log}: {fence[0]!r} no longer holds this writer's token")
        # UPDATE-then-INSERT rather than UPSERT ... RETURNING: works on the
        # older sqlite libraries some Python builds still ship.
        if conn.execute("UPDATE logs SET last_id = last_id + 1 WHERE name = ?", (log,)).rowcount:
            (new_id,) = conn.execute("SELECT last_id FROM logs WHERE name = ?", (log,)).fetchone()
        else:
            conn.execute("INSERT INTO logs (name, last_id) VALUES (?, 1)", (log,))
            new_id = 1
        conn.execute("INSERT INTO records (log, id, data) VALUES (?, ?, ?)", (log, new_id, record))
    return int(new_id)


def tail(conn: sqlite3.Connection, log: str, n: int) -> list[tuple[int, bytes]]:
    # One statement, so one consistent snapshot without an explicit transaction.
    rows = conn.execute(
        "SELECT id, data FROM records WHERE log = ? ORDER BY id DESC LIMIT ?", (log, n)
    ).fetchall()
    return [(int(i), bytes(d)) for i, d in reversed(rows)]


def read(conn: sqlite3.Connection, log: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
    rows = conn.execute(
        "SELECT id, data FROM records WHERE log = ? AND id > ? ORDER BY id LIMIT ?",
        (log, after_id, limit),
    ).fetchall()
    return [(int(i), bytes(d)) for i, d in rows]


def trim(conn: sqlite3.Connection, log: str, keep_last: int) -> int:
    with _write(conn):
        # The newest record to delete is the one just past the kept ones.
        row = conn.execute(
            "SELECT id FROM records WHERE log = ? ORDER BY id DESC LIMIT 1 OFFSET ?",
            (log, keep_last),
        ).fetchone()
        if row is None:
            return 0
        return conn.execute("DELETE FROM records WHERE log = ? AND id <= ?", (log, row[0])).rowcount


def live_value(conn: sqlite3.Connection, key: str, now: float) -> bytes | None:
    """The key's value, or None if absent or expired at ``now``."""
    row = conn.execute(
        "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)",
        (key, now),
    ).fetchone()
    return None if row is None else bytes(row[0])


def get(conn: sqlite3.Connection, key: str, now: float) -> bytes | None:
    return live_value(conn, key, now)


def _sweep(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(
        "DELETE FROM kv WHERE key IN (SELECT key FROM kv"
        " WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
        (now, _SWEEP_BATCH),
    )


def _set(conn: sqlite3.Connection, key: str, value: bytes, expires_at: float | None) -> None:
    conn.execute(
        "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key)"
        " DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        (key, value, expires_at),
    )


def put(conn: sqlite3.Connection, key: str, value: bytes, ttl: float | None, now: float) -> None:
    with _write(conn):
        _sweep(conn, now)
        _set(conn, key, value, None if ttl is None else now + ttl)


def delete(conn: sqlite3.Connection, key: str, now: float) -> bool:
    with _write(conn):
        existed = live_value(conn, key, now) is not None
        conn.execute("DELETE FROM kv WHERE key = ?", (key,))
    return existed


def compare_and_set(
    conn: sqlite3.Connection,
    key: str,
    expected: bytes | None,
    new: bytes | None,
    ttl: float | None,
    now: float,
) -> bool:
    with _write(conn):  # the read and the write must see no other writer between them
        if live_value(conn, key, now) != expected:
            return False
        _sweep(conn, now)
        if new is None:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))
        else:
            _set(conn, key, new, None if ttl is None else now + ttl)
    return True
