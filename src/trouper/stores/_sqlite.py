"""``sqlite:///path``: the embedded default store, safe for several processes.

The stdlib ``sqlite3`` module blocks, so every call runs in a worker thread
through ``trio.to_thread.run_sync`` behind a ``CapacityLimiter(1)``: one
statement at a time per store, the Trio loop never waits on the disk, and
the connection is never used by two threads at once.

Several processes (a crashed room actor re-created on another node of the
same host) may share one file: WAL mode, a busy timeout and ``BEGIN
IMMEDIATE`` writes (see ``_sqlite_ops``) make their appends serialise rather
than collide.

Cancellation: calls use ``abandon_on_cancel=False``. Abandoning the thread
would return control while the statement still runs, and a later call could
then find a transaction half-done on the shared connection, or the store
closed under it. So a cancelled call waits for its statement (bounded by the
busy timeout) and the thread always commits or rolls back; the result (or
error) is then delivered, and the cancellation takes effect at the caller's
next checkpoint. As with any remote write, a cancelled ``append`` may
therefore have been committed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Literal, TypeVar

import trio

from trouper._errors import ConfigurationError

from . import _sqlite_ops as ops
from ._api import Store
from ._base import BaseStore
from ._errors import StoreError, map_exceptions

__all__ = ["SqliteStore", "open_sqlite_store", "parse_sqlite_url"]

T = TypeVar("T")

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_URL_FORMS = "sqlite:///relative/path.db or sqlite:////absolute/path.db"


class SqliteStore(BaseStore):
    """A store in one SQLite file. Open it with ``await SqliteStore.open(path)``."""

    backend = "sqlite"

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        limiter: trio.CapacityLimiter,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__()
        self._conn: sqlite3.Connection | None = conn
        self._limiter = limiter
        self.path = path
        #: Wall-clock seconds for ``ttl=`` (several processes compare them);
        #: read on the Trio thread and passed to the statement.
        self.clock = clock

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        synchronous: Synchronous = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> SqliteStore:
        """Open or create the database at ``path`` (parent directories too).

        ``busy_timeout`` is how long a write waits for another process's
        write lock before raising the retryable ``StoreBusy``.
        """
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):  # it is spliced into SQL
            raise ConfigurationError(f"synchronous must be OFF/NORMAL/FULL/EXTRA: {synchronous!r}")
        if not busy_timeout >= 0:  # also rejects NaN
            raise ConfigurationError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        limiter = trio.CapacityLimiter(1)

        def connect() -> tuple[sqlite3.Connection, Path]:
            resolved = Path(path).absolute()  # getcwd() is I/O: done in the thread too
            return ops.connect(resolved, busy_timeout, synchronous), resolved

        with map_exceptions(f"sqlite store {path}"):
            conn, resolved = await trio.to_thread.run_sync(connect, limiter=limiter)
        return cls(conn, resolved, limiter, clock)

    async def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            # Checked here, under the limiter: aclose() may have run while
            # this call waited for its turn.
            conn = self._conn
            if conn is None:
                raise StoreError(f"sqlite store {self.path} is closed")
            return op(conn)

        with map_exceptions(f"sqlite store {self.path}"):
            return await trio.to_thread.run_sync(
                work, limiter=self._limiter, abandon_on_cancel=False
            )

    async def _do_append(self, log: str, record: bytes, fence: tuple[str, bytes] | None) -> int:
        now = self.clock()
        return await self._run(lambda c: ops.append(c, log, record, fence, now))

    async def _do_tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        return await self._run(lambda c: ops.tail(c, log, n))

    async def _do_read(self, log: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
        return await self._run(lambda c: ops.read(c, log, after_id, limit))

    async def _do_trim(self, log: str, keep_last: int) -> int:
        return await self._run(lambda c: ops.trim(c, log, keep_last))

    async def _do_get(self, key: str) -> bytes | None:
        now = self.clock()
        return await self._run(lambda c: ops.get(c, key, now))

    async def _do_put(self, key: str, value: bytes, ttl: float | None) -> None:
        now = self.clock()
        await self._run(lambda c: ops.put(c, key, value, ttl, now))

    async def _do_delete(self, key: str) -> bool:
        now = self.clock()
        return await self._run(lambda c: ops.delete(c, key, now))

    async def _do_compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None
    ) -> bool:
        now = self.clock()
        return await self._run(lambda c: ops.compare_and_set(c, key, expected, new, ttl, now))

    async def _do_close(self) -> None:
        def close() -> None:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

        # Shielded: a store cancelled while closing must still release its
        # file handle and WAL locks, or a restarted actor would wait on them.
        with trio.CancelScope(shield=True), map_exceptions(f"sqlite store {self.path}"):
            await trio.to_thread.run_sync(close, limiter=self._limiter)


def parse_sqlite_url(url: str) -> Path:
    """The file named by a ``sqlite://`` URL (SQLAlchemy's convention).

    ``sqlite:///chat.db`` is ``chat.db`` relative to the working directory;
    ``sqlite:////var/lib/trouper/chat.db`` (four slashes) is absolute. The
    URL has no host, query or fragment.
    """
    _, sep, rest = url.partition("://")
    if not sep or not rest.startswith("/"):
        raise ConfigurationError(f"malformed sqlite store URL {url!r}: use {_URL_FORMS}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise ConfigurationError(f"sqlite store URL {url!r} takes no query or fragment")
    if not path or path.endswith("/") or path == ":memory:":
        raise ConfigurationError(
            f"sqlite store URL {url!r} names no file: use {_URL_FORMS} (or memory:// in tests)"
        )
    return Path(path)


def open_sqlite_store(url: str) -> AbstractAsyncContextManager[Store]:
    """``open_store`` factory for ``sqlite://`` URLs."""
    path = parse_sqlite_url(url)  # a bad URL fails at open_store() time

    @asynccontextmanager
    async def manage() -> AsyncIterator[Store]:
        async with await SqliteStore.open(path) as store:
            yield store

    return manage()
