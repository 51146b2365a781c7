"""The contract every backend honours, run unchanged over memory:// and sqlite://."""

from __future__ import annotations

import pytest
import trio

from trouper.stores import (
    MAX_NAME_LENGTH,
    InvalidStoreArgument,
    Store,
    StoreError,
    StoreStatistics,
    open_store,
)


async def test_ids_increase_per_log_and_logs_are_independent(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert isinstance(store, Store)
            assert [await store.append("a", b"a%d" % i) for i in range(3)] == [1, 2, 3]
            assert await store.append("b", b"b0") == 1
            assert await store.append("a", b"a3") == 4
            assert await store.tail("a", 10) == [(i + 1, b"a%d" % i) for i in range(4)]
            assert await store.tail("b", 10) == [(1, b"b0")]


async def test_tail_and_read(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert await store.tail("empty", 5) == []
            assert await store.read("empty") == []
            for i in range(1, 11):
                await store.append("log", bytes([i]))
            assert await store.tail("log", 3) == [(8, b"\x08"), (9, b"\x09"), (10, b"\x0a")]
            assert await store.tail("log", 0) == []
            assert len(await store.tail("log", 100)) == 10
            assert await store.read("log", after_id=7) == [
                (8, b"\x08"),
                (9, b"\x09"),
                (10, b"\x0a"),
            ]
            assert await store.read("log", after_id=2, limit=2) == [(3, b"\x03"), (4, b"\x04")]
            assert await store.read("log", after_id=10) == []
            assert await store.read("log", limit=0) == []
            assert [i for i, _ in await store.read("log")] == list(range(1, 11))


async def test_trim_keeps_the_newest_and_ids_keep_increasing(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert await store.trim("nothing", 0) == 0
            for i in range(5):
                await store.append("log", b"%d" % i)
            assert await store.trim("log", 10) == 0
            assert await store.trim("log", 2) == 3
            assert await store.tail("log", 10) == [(4, b"3"), (5, b"4")]
            assert await store.read("log", after_id=0) == [(4, b"3"), (5, b"4")]
            assert await store.trim("log", 0) == 2
            assert await store.tail("log", 10) == []
            assert await store.append("log", b"again") == 6  # never reused


async def test_records_are_bytes_verbatim(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            everything = bytes(range(256))
            await store.append("log", everything)
            await store.append("log", b"")
            await store.append("log", bytearray(b"buf"))  # type: ignore[arg-type]  # copied in
            await store.append("logé🙂", b"unicode name")
            assert await store.tail("log", 3) == [(1, everything), (2, b""), (3, b"buf")]
            assert await store.tail("logé🙂", 1) == [(1, b"unicode name")]
            assert all(type(r) is bytes for _, r in await store.tail("log", 3))


async def test_key_value(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert await store.get("k") is None
            await store.put("k", b"v1")
            assert await store.get("k") == b"v1"
            await store.put("k", b"v2")
            assert await store.get("k") == b"v2"
            await store.put("empty", b"")
            assert await store.get("empty") == b""
            assert await store.delete("k") is True
            assert await store.delete("k") is False
            assert await store.get("k") is None
            # keys and logs are separate namespaces
            await store.append("k", b"record")
            assert await store.get("k") is None


async def test_compare_and_set(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert await store.compare_and_set("lease", b"x", b"y") is False  # absent
            assert await store.get("lease") is None
            assert await store.compare_and_set("lease", None, b"node-1") is True  # claim
            assert await store.compare_and_set("lease", None, b"node-2") is False  # taken
            assert await store.compare_and_set("lease", b"node-2", b"node-3") is False
            assert await store.get("lease") == b"node-1"
            assert await store.compare_and_set("lease", b"node-1", b"node-2") is True
            assert await store.compare_and_set("lease", b"node-2", None) is True  # release
            assert await store.get("lease") is None
            assert await store.compare_and_set("lease", None, None) is True  # absent stays so
            assert await store.get("lease") is None


async def test_concurrent_tasks_get_distinct_ids(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            seen: dict[int, list[int]] = {}

            async def writer(w: int) -> None:
                seen[w] = [await store.append("log", b"%d" % w) for _ in range(20)]

            async with trio.open_nursery() as nursery:
                for w in range(5):
                    nursery.start_soon(writer, w)
            assert sorted(i for ids in seen.values() for i in ids) == list(range(1, 101))
            assert all(ids == sorted(ids) for ids in seen.values())


async def test_bad_names_and_arguments(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            longest = "n" * MAX_NAME_LENGTH
            assert await store.append(longest, b"ok") == 1
            await store.put(longest, b"ok")
            for bad in ("", "n" * (MAX_NAME_LENGTH + 1), "nul\x00byte"):
                with pytest.raises(InvalidStoreArgument):
                    await store.append(bad, b"x")
                with pytest.raises(InvalidStoreArgument):
                    await store.tail(bad, 1)
                with pytest.raises(InvalidStoreArgument):
                    await store.get(bad)
                with pytest.raises(ValueError):  # InvalidStoreArgument is one too
                    await store.compare_and_set(bad, None, b"x")
            with pytest.raises(TypeError):
                await store.append(42, b"x")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await store.append("log", "not bytes")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await store.put("k", None)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await store.tail("log", 1.5)  # type: ignore[arg-type]
            with pytest.raises(InvalidStoreArgument):
                await store.tail("log", -1)
            with pytest.raises(InvalidStoreArgument):
                await store.read("log", after_id=-1)
            with pytest.raises(InvalidStoreArgument):
                await store.trim("log", 2**64)
            assert await store.tail("log", 10) == []  # nothing bad got in


async def test_statistics_and_close(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            await store.append("log", b"x")
            await store.tail("log", 1)
            await store.read("log")
            await store.trim("log", 1)
            await store.put("k", b"v")
            await store.get("k")
            await store.delete("k")
            await store.compare_and_set("k", None, b"v")
            stats = store.statistics()
            backend = store_url.partition("://")[0]
            assert stats == StoreStatistics(
                backend=backend,
                appends=1,
                reads=2,
                trims=1,
                gets=1,
                puts=1,
                deletes=1,
                compare_and_sets=1,
            )
        assert store.statistics().closed
        await store.aclose()  # idempotent
        with pytest.raises(StoreError, match="closed"):
            await store.append("log", b"y")
        assert store.statistics().errors == 1
