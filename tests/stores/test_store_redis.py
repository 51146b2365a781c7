"""What only the ``redis://`` store has (the shared suites run it too, through
the ``redis`` param of ``store_url``): its key layout under the URL's prefix,
TTLs and fences done by Redis itself, the EVALSHA fallback after a script
flush, large values, ids that never go back, and two OS processes appending
to one log at once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import pytest
import trio
from benchmarks._redis_server import redis_store_url

from redis_helper import RedisServer
from trouper.stores import InvalidStoreArgument, StoreError, open_store
from trouper.stores._redis import RedisStore

WORKER = Path(__file__).with_name("store_append_worker.py")
COUNT = 200


def prefix_of(url: str) -> str:
    return url.partition("prefix=")[2]


@asynccontextmanager
async def outside(server: RedisServer) -> AsyncIterator[Any]:
    async with coredis.Redis(host="127.0.0.1", port=server.port) as client:
        yield client


async def until(read: Callable[[], Awaitable[object]], value: object) -> None:
    """Poll until ``read()`` returns ``value`` (under the caller's deadline):
    for a key's expiry or a process's file, which no event announces."""
    while True:
        if await read() == value:
            return
        await trio.sleep(0.01)


async def test_keys_live_under_the_prefix(redis_server: RedisServer, redis_url: str) -> None:
    prefix = prefix_of(redis_url)
    with trio.fail_after(10):
        async with open_store(redis_url) as store, outside(redis_server) as admin:
            assert isinstance(store, RedisStore) and store.prefix == prefix
            await store.append("room", b"r")
            await store.put("owner", b"n1")
            keys = {k.decode() for k in await admin.keys(prefix + "*")}
            assert keys == {
                f"{prefix}log:room:seq",
                f"{prefix}log:room:stream",
                f"{prefix}kv:owner",
            }
            assert await admin.type(f"{prefix}log:room:stream") == b"stream"
        other = redis_url.replace(prefix, prefix + "other:")
        async with open_store(other) as neighbour:  # same server and db, own keyspace
            assert await neighbour.get("owner") is None
            assert await neighbour.append("room", b"x") == 1


async def test_ttl_is_redis_expiry(redis_server: RedisServer, redis_url: str) -> None:
    prefix = prefix_of(redis_url)
    with trio.fail_after(10):
        async with open_store(redis_url) as store, outside(redis_server) as admin:
            await store.put("lease", b"a", ttl=30)
            assert 0 < await admin.pttl(f"{prefix}kv:lease") <= 30_000
            await store.put("lease", b"a")  # a put without ttl makes it permanent
            assert await admin.pttl(f"{prefix}kv:lease") == -1
            assert await store.compare_and_set("lease", b"a", b"b", ttl=0.05)
            await until(lambda: store.get("lease"), None)  # Redis expires it, in its own time
            assert await store.compare_and_set("lease", None, b"c", ttl=60)  # expired = absent
            assert 0 < await admin.pttl(f"{prefix}kv:lease") <= 60_000
            for bad in (0, -1.0, float("nan"), float("inf")):
                with pytest.raises(InvalidStoreArgument, match="ttl"):
                    await store.put("lease", b"x", ttl=bad)
            with pytest.raises(TypeError, match="ttl"):
                await store.put("lease", b"x", ttl="5")  # type: ignore[arg-type]
            assert await store.get("lease") == b"c"


async def test_fenced_append(redis_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(redis_url) as store:
            redis_store = store
            assert isinstance(redis_store, RedisStore)
            await store.put("writer", b"token-1")
            assert await redis_store.append("log", b"a", fence=("writer", b"token-1")) == 1
            await store.put("writer", b"token-2")  # a newer writer took over
            with pytest.raises(StoreError, match="no longer holds") as info:
                await redis_store.append("log", b"stale", fence=("writer", b"token-1"))
            assert not info.value.is_retryable
            await store.put("writer", b"token-3", ttl=0.05)
            await until(lambda: store.get("writer"), None)
            with pytest.raises(StoreError, match="no longer holds"):  # an expired fence
                await redis_store.append("log", b"late", fence=("writer", b"token-3"))
            assert await store.read("log") == [(1, b"a")]  # nothing written
            assert await store.append("log", b"b") == 2  # and no id spent on refusals


async def test_scripts_survive_a_script_flush(redis_server: RedisServer, redis_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(redis_url) as store, outside(redis_server) as admin:
            assert await store.append("log", b"a") == 1
            await admin.script_flush()  # as after a server restart: EVALSHA says NOSCRIPT
            assert await store.append("log", b"b") == 2
            await admin.script_flush()
            assert await store.compare_and_set("k", None, b"v")


async def test_large_values(redis_url: str) -> None:
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB, every byte value
    with trio.fail_after(20):
        async with open_store(redis_url) as store:
            assert await store.append("log", big) == 1
            assert await store.tail("log", 1) == [(1, big)]
            await store.put("k", big)
            assert await store.get("k") == big


async def test_ids_never_go_back(redis_server: RedisServer, redis_url: str) -> None:
    prefix = prefix_of(redis_url)
    with trio.fail_after(10):
        async with open_store(redis_url) as store, outside(redis_server) as admin:
            for i in range(3):
                await store.append("log", b"%d" % i)
            assert await store.trim("log", 0) == 3
            assert await store.append("log", b"after trim") == 4
            # Someone deletes the counter: the stream itself refuses to reuse
            # an id instead of handing out 1 again.
            await admin.delete([f"{prefix}log:log:seq"])
            with pytest.raises(StoreError, match="equal or smaller") as info:
                await store.append("log", b"x")
            assert not info.value.is_retryable
            assert await store.read("log") == [(4, b"after trim")]


async def test_two_processes_append_to_one_log(redis_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(tag: str) -> None:
        cmd = [
            sys.executable,
            str(WORKER),
            redis_url,
            tag,
            str(COUNT),
            "0",  # no claims: the shared suite races those
            str(tmp_path / tag),
            str(go),
        ]
        results[tag] = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for tag in "AB":
                nursery.start_soon(run, tag)
            for tag in "AB":  # the workers touch their ready file once started
                await until(trio.Path(tmp_path / tag).exists, True)
            await trio.Path(go).touch()  # both are up: let them write together

    ids = {}
    for tag, proc in results.items():
        assert proc.returncode == 0, proc.stderr.decode()
        assert not proc.stderr, proc.stderr.decode()
        ids[tag] = json.loads(proc.stdout)["ids"]
        assert ids[tag] == sorted(set(ids[tag])), f"{tag} saw ids out of order"
        assert len(ids[tag]) == COUNT
    assert sorted(ids["A"] + ids["B"]) == list(range(1, 2 * COUNT + 1))  # none lost or shared

    with trio.fail_after(10):
        async with open_store(redis_url) as store:
            stored = dict(await store.read("room", limit=10 * COUNT))
            # each worker adds COUNT // 2 with compare-and-set: no update lost
            assert await store.get("counter") == str(2 * (COUNT // 2)).encode()
    for tag in "AB":
        for i, record_id in enumerate(ids[tag]):
            assert stored[record_id] == f"{tag}:{i}".encode()


async def test_the_bench_helper_gives_a_working_store_url() -> None:
    """benchmarks/_redis_server.redis_store_url, which bench cases use for Redis."""
    with redis_store_url() as url:
        assert "?prefix=bench-" in url
        with trio.fail_after(10):
            async with open_store(url) as store:
                assert await store.append("log", b"x") == 1
