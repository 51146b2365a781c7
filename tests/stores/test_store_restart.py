"""Data and id counters survive closing and reopening the same store."""

from __future__ import annotations

import trio

from trouper.stores import open_store


async def test_reopen_sees_data_and_ids_continue(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            for i in range(5):
                await store.append("room:lobby", b"m%d" % i)
            await store.append("room:other", b"o")
            await store.trim("room:other", 0)
            await store.put("owner:lobby", b"node-1")

        async with open_store(store_url) as store:
            assert await store.tail("room:lobby", 2) == [(4, b"m3"), (5, b"m4")]
            assert await store.append("room:lobby", b"after restart") == 6
            assert await store.append("room:other", b"o2") == 2  # trimmed-away ids stay used
            assert await store.get("owner:lobby") == b"node-1"

        async with open_store(store_url) as store:
            assert [i for i, _ in await store.read("room:lobby")] == [1, 2, 3, 4, 5, 6]


async def test_two_stores_on_one_url_see_each_other(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as a, open_store(store_url) as b:
            assert await a.append("log", b"from a") == 1
            assert await b.append("log", b"from b") == 2
            assert await a.tail("log", 2) == [(1, b"from a"), (2, b"from b")]
            assert await a.compare_and_set("lease", None, b"a") is True
            assert await b.compare_and_set("lease", None, b"b") is False


async def test_anonymous_memory_store_is_private() -> None:
    with trio.fail_after(5):
        async with open_store("memory://") as a, open_store("memory://") as b:
            await a.append("log", b"x")
            assert await b.tail("log", 1) == []
