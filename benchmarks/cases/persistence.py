"""persist_<backend>: events persisted per second by a PersistentActor against
raw appends of records of the same size through the same kind of store.

The trouper side is one actor persisting ``n`` events in a handler (each one
encoded, appended fenced on its ownership token, then applied); the baseline
appends ``n`` ready-made records of the same encoded size with
``store.append``. Both open a fresh store (a new sqlite file in a temporary
directory; for the server backends, a URL from the environment with a fresh
log name per sample) and ``WARMUP`` writes happen before the timed region.

Server backends: each sample starts its own PostgreSQL or redis-server on a
free loopback port (``benchmarks/_postgres_server.py``, ``_redis_server.py``),
unless ``TROUPER_BENCH_POSTGRES_URL`` / ``TROUPER_BENCH_REDIS_URL`` name a
running one.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import trio

import trouper
from benchmarks.cases._timing import clock, rate
from trouper.stores import open_store

DEADLINE = 600.0
WARMUP = 50
NOTE = "x" * 100
_ENV = {"postgres": "TROUPER_BENCH_POSTGRES_URL", "redis": "TROUPER_BENCH_REDIS_URL"}


@contextmanager
def store_url(backend: str) -> Iterator[str]:
    """A fresh store of ``backend`` for one sample."""
    if backend == "memory":
        yield f"memory://bench-{secrets.token_hex(8)}"
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="trouper-bench-") as tmp:
            yield f"sqlite:///{tmp}/persist.db"
    elif os.environ.get(_ENV[backend]):
        yield os.environ[_ENV[backend]]
    elif backend == "postgres":
        from benchmarks._postgres_server import PostgresServer

        with PostgresServer() as server:
            yield server.create_database().replace("postgresql://", "postgres://", 1)
    else:
        from benchmarks._redis_server import redis_store_url

        with redis_store_url() as url:
            yield url


def _persist(n: int, backend: str) -> float:
    from benchmarks.cases.persist_actors import Persist, Writer

    async def main() -> float:
        with trio.fail_after(DEADLINE), store_url(backend) as url:
            async with trouper.open_node() as node:
                writer = await node.spawn(Writer, f"bench-{secrets.token_hex(6)}", url, NOTE)
                await writer.ask(Persist(WARMUP), timeout=DEADLINE)
                seconds = await writer.ask(Persist(n), timeout=DEADLINE)
        return rate(n, seconds)

    return trio.run(main)


def _raw(n: int, backend: str) -> float:
    from benchmarks.cases.persist_actors import record_of_the_same_size

    async def main() -> float:
        record = record_of_the_same_size(NOTE)
        log = f"bench-raw-{secrets.token_hex(6)}"
        with trio.fail_after(DEADLINE), store_url(backend) as url:
            async with open_store(url) as store:
                for _ in range(WARMUP):
                    await store.append(log, record)
                start = clock()
                for _ in range(n):
                    await store.append(log, record)
                elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def persist_sqlite(n: int) -> float:
    return _persist(n, "sqlite")


def raw_append_sqlite(n: int) -> float:
    return _raw(n, "sqlite")


def persist_postgres(n: int) -> float:
    return _persist(n, "postgres")


def raw_append_postgres(n: int) -> float:
    return _raw(n, "postgres")


def persist_redis(n: int) -> float:
    return _persist(n, "redis")


def raw_append_redis(n: int) -> float:
    return _raw(n, "redis")
