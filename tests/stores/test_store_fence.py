"""Fenced appends: ``append(log, record, fence=(key, token))`` writes only while
``key`` holds ``token``, over every backend (the ``store_url`` fixture)."""

from __future__ import annotations

import pytest
import trio

import trouper
from trouper.stores import InvalidStoreArgument, StaleWriter, StoreError, open_store


async def test_a_fenced_append_writes_while_the_key_holds_the_token(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert await store.compare_and_set("owner", None, b"me")
            assert await store.append("log", b"a", fence=("owner", b"me")) == 1
            assert await store.append("log", b"b", fence=("owner", b"me")) == 2
            assert await store.append("log", b"c") == 3  # unfenced appends still work
            assert await store.tail("log", 10) == [(1, b"a"), (2, b"b"), (3, b"c")]


async def test_a_stale_token_writes_nothing_and_raises(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            assert await store.compare_and_set("owner", None, b"old")
            assert await store.append("log", b"first", fence=("owner", b"old")) == 1
            assert await store.compare_and_set("owner", b"old", b"new")  # taken over
            with pytest.raises(StaleWriter) as info:
                await store.append("log", b"stale", fence=("owner", b"old"))
            assert isinstance(info.value, StoreError) and isinstance(
                info.value, trouper.StaleWriter
            )
            assert not info.value.is_retryable and info.value.error_code == "store-stale-writer"
            assert "owner" in str(info.value)
            # Nothing was written, and the id was not consumed.
            assert await store.tail("log", 10) == [(1, b"first")]
            assert await store.append("log", b"second", fence=("owner", b"new")) == 2
            assert store.statistics().errors == 1


async def test_an_absent_key_or_a_prefix_token_is_stale(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            with pytest.raises(StaleWriter):
                await store.append("log", b"x", fence=("nobody", b"t"))
            await store.put("owner", b"token-1")
            for wrong in (b"token", b"token-10", b"", b"TOKEN-1"):
                with pytest.raises(StaleWriter):
                    await store.append("log", b"x", fence=("owner", wrong))
            await store.delete("owner")
            with pytest.raises(StaleWriter):
                await store.append("log", b"x", fence=("owner", b"token-1"))
            assert await store.tail("log", 10) == []
            assert await store.append("log", b"ok") == 1


async def test_a_bad_fence_is_rejected_before_touching_the_store(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            with pytest.raises(InvalidStoreArgument, match="fence key"):
                await store.append("log", b"x", fence=("", b"t"))
            with pytest.raises(TypeError, match="fence"):
                await store.append("log", b"x", fence=("k", "str token"))  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="fence"):
                await store.append("log", b"x", fence=["k", b"t"])  # type: ignore[arg-type]
            assert await store.tail("log", 10) == []


async def test_racing_fenced_writers_never_interleave(store_url: str) -> None:
    """Writers take the key over from each other while all of them append:
    every id given went to a record in the log, and once a writer was
    replaced no record of it follows another writer's."""
    with trio.fail_after(20):
        async with open_store(store_url) as store:
            written: list[tuple[int, bytes]] = []

            async def writer(token: bytes) -> None:
                current = await store.get("owner")
                while not await store.compare_and_set("owner", current, token):
                    current = await store.get("owner")
                for i in range(10):
                    try:
                        rid = await store.append("log", token + b":%d" % i, fence=("owner", token))
                    except StaleWriter:
                        assert await store.get("owner") != token
                        return
                    written.append((rid, token))

            async with trio.open_nursery() as nursery:
                for n in range(5):
                    nursery.start_soon(writer, b"w%d" % n)
            records = await store.read("log", after_id=0, limit=1000)
            assert sorted(written) == [(rid, rec.split(b":")[0]) for rid, rec in records]
            # Ownership only moves forward: once a writer's records stop, no
            # record of it appears after another writer's.
            owners = [rec.split(b":")[0] for _, rec in records]
            runs = [o for i, o in enumerate(owners) if i == 0 or owners[i - 1] != o]
            assert len(runs) == len(set(runs))
