"""redis_store_append: appends to a ``redis://`` store against raw coredis doing the same.

Both sides run ``TASKS`` concurrent writers appending ``n`` small records in all, on a
``redis-server`` of their own (``benchmarks/_redis_server.py``). The baseline sends the very
same Lua script (INCR the log's counter, XADD the record) with EVALSHA on one plain coredis
client; trouper adds what a store is: argument checks, a pool checkout per call, the error
edge and the statistics. The ratio is what that costs.
"""

from __future__ import annotations

import trio

from benchmarks._redis_server import redis_store_url
from benchmarks.cases._timing import clock, rate

TASKS = 8
DEADLINE = 300.0
RECORD = b"x" * 100


def _split(n: int) -> list[int]:
    return [n // TASKS + (1 if i < n % TASKS else 0) for i in range(TASKS)]


def trouper_redis_append(n: int) -> float:
    from trouper.stores import open_store

    async def main(url: str) -> float:
        with trio.fail_after(DEADLINE):
            async with open_store(url + f"&min={TASKS}&max={TASKS}") as store:
                await store.append("warm-up", RECORD)

                async def writer(count: int) -> None:
                    for _ in range(count):
                        await store.append("log", RECORD)

                start = clock()
                async with trio.open_nursery() as nursery:
                    for count in _split(n):
                        nursery.start_soon(writer, count)
                elapsed = clock() - start
                assert (await store.tail("log", 1))[0][0] == n
        return rate(n, elapsed)

    with redis_store_url() as url:
        return trio.run(main, url)


def coredis_script_append(n: int) -> float:
    import coredis

    from trouper.stores._redis import _APPEND

    async def main(url: str) -> float:
        prefix = url.partition("prefix=")[2]
        keys = [f"{prefix}log:log:seq".encode(), f"{prefix}log:log:stream".encode()]
        with trio.fail_after(DEADLINE):
            async with coredis.Redis.from_url(url.partition("?")[0]) as client:
                await client.eval(_APPEND.source, keys, [RECORD])  # loads the script

                async def writer(count: int) -> None:
                    for _ in range(count):
                        await client.evalsha(_APPEND.sha, keys, [RECORD])

                start = clock()
                async with trio.open_nursery() as nursery:
                    for count in _split(n):
                        nursery.start_soon(writer, count)
                elapsed = clock() - start
        return rate(n, elapsed)

    with redis_store_url() as url:
        return trio.run(main, url)
