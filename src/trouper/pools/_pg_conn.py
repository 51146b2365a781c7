"""One psycopg connection and the one thread that drives it.

psycopg 3's sync connections block, so each ``PgConnection`` owns a
dedicated OS thread: every call on the connection is a job handed to that
thread through a queue, and its result comes back to the waiting Trio task
with ``run_sync_soon``. The Trio loop never blocks on the database, calls on
one connection run strictly in order, and the connection is only ever
touched by its own thread (libpq connections are not meant to be shared
between threads mid-query).

Cancellation: a Trio task cancelled while its query runs cannot take the
thread back, and leaving the statement running would let the next borrower
find the connection mid-query. So the abort asks the server to cancel the
statement (``conn.cancel_safe()``, from a helper thread: it opens a socket),
waits for the thread to return (quickly, with ``QueryCanceled``), marks the
connection ``broken`` and only then lets ``Cancelled`` out. A broken
connection is never reused: a cancel request reaches the server
asynchronously and could otherwise hit the *next* statement. As with any
remote write, a statement cancelled after it committed stays committed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import outcome
import trio

from ._pg_errors import StoreUnavailable, map_exceptions

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgConnection", "Row"]

T = TypeVar("T")
Row = tuple[Any, ...]
_Job = Callable[[], None]

# Bounds the wait for a connection's own thread when closing: a server that
# vanished without a TCP reset must not hold a pool's shutdown forever.
_CLOSE_TIMEOUT = 5.0


class _Thread:
    """A daemon thread running queued jobs in order until told to stop."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        self._jobs.put(None)


class PgConnection:
    """A psycopg connection (autocommit) driven by its own thread.

    Open it with ``await PgConnection.open(url)``; the pool does this.
    """

    _counter = 0

    def __init__(self, conn: psycopg.Connection[Row], thread: _Thread, where: str) -> None:
        self._conn = conn
        self._thread = thread
        self._where = where
        self._lock = trio.StrictFIFOLock()  # one call at a time, in arrival order
        self.broken = False
        self.closed = False
        self._busy = False  # a statement is in the thread

    @classmethod
    async def open(cls, url: str, *, connect_timeout: float, where: str) -> PgConnection:
        import psycopg

        cls._counter += 1
        thread = _Thread(f"trouper-pg-{cls._counter}")
        timeout = max(1, round(connect_timeout))  # libpq takes whole seconds

        opened: list[psycopg.Connection[Row]] = []

        def connect() -> psycopg.Connection[Row]:
            # A cancelled call waits for its thread, and the thread for the
            # server: keepalives bound that wait when the server vanished
            # without a reset (a dead host, a partition) to about 30 s,
            # instead of the kernel's two hours.
            conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=timeout,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                tcp_user_timeout=30_000,  # ms: unacknowledged data
            )
            opened.append(conn)
            return conn

        try:
            with map_exceptions(where):
                conn = await _wait(thread, connect, on_abort=None)
        except BaseException:
            if opened:  # connected, but the caller was cancelled meanwhile
                thread.submit(opened[0].close)
            thread.stop()
            raise
        return cls(conn, thread, where)

    async def run(self, fn: Callable[[psycopg.Connection[Row]], T]) -> T:
        """Run ``fn(connection)`` in this connection's thread; errors come out translated."""
        async with self._lock:
            if self.broken or self.closed:
                raise StoreUnavailable(f"{self._where}: connection is no longer usable")
            self._busy = True
            try:
                with map_exceptions(self._where):
                    return await _wait(self._thread, lambda: fn(self._conn), self._abort)
            except StoreUnavailable:
                self.broken = True
                raise
            finally:
                self._busy = False

    def _abort(self) -> None:
        self.broken = True
        trio.lowlevel.start_thread_soon(self._cancel_on_server, _ignore)

    def _cancel_on_server(self) -> None:
        try:
            self._conn.cancel_safe(timeout=_CLOSE_TIMEOUT)
        except Exception:  # best effort: the connection is discarded anyway
            pass

    async def execute(self, query: str, args: Sequence[Any]) -> int:
        def work(c: psycopg.Connection[Row]) -> int:
            return c.execute(query, args or None).rowcount

        return await self.run(work)

    async def fetch(self, query: str, args: Sequence[Any]) -> list[Row]:
        return await self.run(lambda c: c.execute(query, args or None).fetchall())

    async def fetchrow(self, query: str, args: Sequence[Any]) -> Row | None:
        return await self.run(lambda c: c.execute(query, args or None).fetchone())

    async def fetchval(self, query: str, args: Sequence[Any]) -> Any:
        def work(c: psycopg.Connection[Row]) -> Any:
            row = c.execute(query, args or None).fetchone()
            return None if row is None else row[0]

        return await self.run(work)

    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self._conn.info.transaction_status != TransactionStatus.IDLE

    async def close(self) -> None:
        """Close the connection and stop its thread; never raises, bounded in time."""
        if self.closed:
            return
        self.closed = True
        done = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def close() -> None:
            try:
                self._conn.close()
            except Exception:  # a dead connection may fail to close: it is gone either way
                pass
            finally:
                try:
                    token.run_sync_soon(done.set)
                except trio.RunFinishedError:
                    pass

        if self.broken or self._busy:  # a statement may still run (a reclaimed leak): stop it
            trio.lowlevel.start_thread_soon(self._cancel_on_server, _ignore)
        self._thread.submit(close)
        self._thread.stop()
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
            await done.wait()


def _ignore(result: object) -> None:
    pass


async def _wait(thread: _Thread, fn: Callable[[], T], on_abort: Callable[[], None] | None) -> T:
    """Run ``fn`` on ``thread`` and wait for it, even when cancelled (see the module doc)."""
    token = trio.lowlevel.current_trio_token()
    task = trio.lowlevel.current_task()
    aborted = False

    def job() -> None:
        result = outcome.capture(fn)
        try:
            token.run_sync_soon(trio.lowlevel.reschedule, task, outcome.Value(result))
        except trio.RunFinishedError:
            pass

    def abort(raise_cancel: Any) -> trio.lowlevel.Abort:
        nonlocal aborted
        if not aborted:
            aborted = True
            if on_abort is not None:
                on_abort()
        return trio.lowlevel.Abort.FAILED  # the thread reschedules us when fn returns

    thread.submit(job)
    result: outcome.Outcome[T] = await trio.lowlevel.wait_task_rescheduled(abort)
    if aborted:
        await trio.lowlevel.checkpoint()  # delivers the pending cancellation
    return result.unwrap()
