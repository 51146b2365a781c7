"""Compare-and-set races inside one process, and large values, on every backend."""

from __future__ import annotations

import random

import trio

from trouper.stores import open_store

LARGE = 8 * 1024 * 1024


async def test_exactly_one_task_wins_each_claim(store_url: str) -> None:
    with trio.fail_after(20):
        async with open_store(store_url) as store:
            winners: dict[str, list[int]] = {}

            async def claim(key: str, task: int) -> None:
                if await store.compare_and_set(key, None, b"%d" % task):
                    winners.setdefault(key, []).append(task)

            async with trio.open_nursery() as nursery:
                for k in range(5):
                    for task in range(20):
                        nursery.start_soon(claim, f"lease/{k}", task)
            assert sorted(winners) == [f"lease/{k}" for k in range(5)]
            for key, tasks in winners.items():
                assert len(tasks) == 1, (key, tasks)
                assert await store.get(key) == b"%d" % tasks[0]


async def test_concurrent_read_modify_writes_lose_nothing(store_url: str) -> None:
    with trio.fail_after(30):
        async with open_store(store_url) as store:
            attempts = 0

            async def increment(times: int) -> None:
                nonlocal attempts
                for _ in range(times):
                    while True:
                        attempts += 1
                        old = await store.get("counter")
                        new = b"%d" % (int(old or b"0") + 1)
                        if await store.compare_and_set("counter", old, new):
                            break

            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(increment, 10)
            assert await store.get("counter") == b"100"
            assert attempts >= 100


async def test_large_values_round_trip(store_url: str) -> None:
    rng = random.Random(13)
    big = rng.randbytes(LARGE)
    other = rng.randbytes(LARGE)
    with trio.fail_after(30):
        async with open_store(store_url) as store:
            await store.put("big", big)
            assert await store.get("big") == big
            assert await store.compare_and_set("big", other, b"x") is False  # same size, not equal
            assert await store.compare_and_set("big", big, other) is True
            assert await store.get("big") == other
            assert await store.append("log", big) == 1
            assert await store.append("log", b"small") == 2
            assert await store.tail("log", 2) == [(1, big), (2, b"small")]
            assert await store.read("log", after_id=0, limit=1) == [(1, big)]
        async with open_store(store_url) as store:  # and from the backend, not a cache
            assert await store.get("big") == other
            assert await store.tail("log", 2) == [(1, big), (2, b"small")]
