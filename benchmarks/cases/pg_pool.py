"""pool_fetchval: ``fetchval("SELECT 1")`` from 16 concurrent callers.

trouper: one ``trouper.pools.postgres`` pool of 16 connections (min = max,
so the figure is the pool's lending and thread hand-off, not its growth),
16 tasks calling ``pool.fetchval``. Baseline: the same driver used
directly at the same concurrency, 16 tasks each owning one psycopg sync
connection and driving it through a dedicated thread of its own, fed
through a queue, exactly as the pool drives each member: the ratio is
what the pool itself costs (checkout, return, sizing, error mapping).
Each side starts its own PostgreSQL (``benchmarks/_postgres_server.py``)
and warms up (connections open, statements prepared) before the clock runs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import trio

from benchmarks._postgres_server import PostgresServer
from benchmarks.cases._timing import clock, rate

CALLERS = 16
DEADLINE = 600.0
WARM_UP = 20  # calls per caller before the clock starts


def _split(n: int) -> list[int]:
    return [n // CALLERS + (1 if i < n % CALLERS else 0) for i in range(CALLERS)]


def trouper_pool_fetchval(n: int) -> float:
    from trouper.pools import PoolPolicy, postgres

    async def main(url: str) -> float:
        with trio.fail_after(DEADLINE):
            async with postgres(url, policy=PoolPolicy(min=CALLERS, max=CALLERS)) as pool:

                async def caller(count: int) -> None:
                    for _ in range(count):
                        await pool.fetchval("SELECT 1")

                async with trio.open_nursery() as nursery:
                    for _ in range(CALLERS):
                        nursery.start_soon(caller, WARM_UP)
                start = clock()
                async with trio.open_nursery() as nursery:
                    for count in _split(n):
                        nursery.start_soon(caller, count)
                return rate(n, clock() - start)

    with PostgresServer() as server:
        return trio.run(main, server.create_database())


class _Driven:
    """One psycopg connection and a thread of its own, fed through a queue: how
    trouper drives each pooled connection, minus the pool."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()

    async def fetchval(self, sql: str) -> object:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[object] = []

        def job() -> None:
            row = self.conn.execute(sql).fetchone()
            box.append(None if row is None else row[0])
            token.run_sync_soon(done.set)

        self.jobs.put(job)
        await done.wait()
        return box[0]

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        self.conn.close()


def psycopg_direct_fetchval(n: int) -> float:
    import psycopg

    async def main(url: str) -> float:
        driven = [_Driven(psycopg.connect(url, autocommit=True)) for _ in range(CALLERS)]
        try:
            with trio.fail_after(DEADLINE):

                async def caller(conn: _Driven, count: int) -> None:
                    for _ in range(count):
                        await conn.fetchval("SELECT 1")

                async with trio.open_nursery() as nursery:
                    for conn in driven:
                        nursery.start_soon(caller, conn, WARM_UP)
                start = clock()
                async with trio.open_nursery() as nursery:
                    for conn, count in zip(driven, _split(n), strict=True):
                        nursery.start_soon(caller, conn, count)
                return rate(n, clock() - start)
        finally:
            for conn in driven:
                conn.close()

    with PostgresServer() as server:
        return trio.run(main, server.create_database())
