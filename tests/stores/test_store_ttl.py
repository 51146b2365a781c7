"""``ttl=`` on put and compare_and_set: an expired key reads as absent everywhere.

The tests over ``store_url`` run on every backend with real time: short
ttls, then polling (with a deadline) until the key is gone, and every other
assertion ordered after that. The memory and sqlite backends also take an
injected clock, which pins the exact edges without waiting.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from trio_thread import TrioThread
from trouper.stores import InvalidStoreArgument, MemoryStore, SqliteStore, Store, open_store

SHORT = 0.05


async def wait_absent(store: Store, key: str) -> None:
    """Poll until ``key`` has expired (the caller's fail_after bounds it):
    expiry is a state of the backend that no event announces."""
    while True:
        if await store.get(key) is None:
            return
        await trio.sleep(0.01)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, -math.inf])
async def test_bad_ttls_are_refused_and_write_nothing(store_url: str, bad: float) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            with pytest.raises(InvalidStoreArgument, match="ttl"):
                await store.put("k", b"v", ttl=bad)
            with pytest.raises(InvalidStoreArgument, match="ttl"):
                await store.compare_and_set("k", None, b"v", ttl=bad)
            for wrong in (True, "1", b"1"):
                with pytest.raises(TypeError, match="ttl"):
                    await store.put("k", b"v", ttl=wrong)  # type: ignore[arg-type]
            assert await store.get("k") is None
            assert store.statistics().puts == 0  # refused before reaching the backend


async def test_a_long_ttl_keeps_the_key(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            await store.put("k", b"v", ttl=3600)
            await store.put("int", b"v", ttl=1)  # an int is fine too
            assert await store.get("k") == b"v"
            assert await store.compare_and_set("k", b"v", b"w", ttl=3600.5) is True
            assert await store.get("k") == b"w"
            assert await store.delete("k") is True


async def test_expired_keys_are_absent_everywhere(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            await store.put("gone", b"1", ttl=SHORT)
            assert await store.compare_and_set("lease", None, b"me", ttl=SHORT) is True
            await store.put("cas-target", b"old", ttl=SHORT)
            await store.put("to-delete", b"x", ttl=SHORT)
            await store.put("last", b"x", ttl=SHORT)  # set after all the others
            await wait_absent(store, "last")
            assert await store.get("gone") is None
            assert await store.get("lease") is None
            # CAS sees the expired key as absent: expecting its old value fails...
            assert await store.compare_and_set("cas-target", b"old", b"new") is False
            # ... and claiming it as absent succeeds, with no ttl left over.
            assert await store.compare_and_set("lease", None, b"other") is True
            assert await store.get("lease") == b"other"
            assert await store.delete("to-delete") is False
            await store.put("gone", b"2")
            assert await store.get("gone") == b"2"


async def test_a_later_write_replaces_the_expiry(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            await store.put("made-permanent", b"v", ttl=SHORT)
            await store.put("made-permanent", b"v2")  # no ttl: permanent now
            assert await store.compare_and_set("renewed", None, b"me", ttl=SHORT)
            assert await store.compare_and_set("renewed", b"me", b"me", ttl=3600)
            await store.put("marker", b"x", ttl=SHORT)  # expires after the two above would
            await wait_absent(store, "marker")
            assert await store.get("made-permanent") == b"v2"
            assert await store.get("renewed") == b"me"


async def test_ttl_is_invisible_to_logs(store_url: str) -> None:
    with trio.fail_after(10):
        async with open_store(store_url) as store:
            await store.append("log", b"r")
            await store.put("log", b"kv", ttl=SHORT)
            await wait_absent(store, "log")
            assert await store.tail("log", 5) == [(1, b"r")]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _exact_edges(store: Store, clock: FakeClock) -> None:
    # Steps are exact in binary floating point, so the edges are exact too.
    await store.put("k", b"v", ttl=10)
    clock.now += 9.75
    assert await store.get("k") == b"v"
    clock.now += 0.25  # expires_at <= now: gone at exactly now + ttl
    assert await store.get("k") is None
    assert await store.compare_and_set("k", None, b"w", ttl=5) is True
    clock.now += 4
    assert await store.compare_and_set("k", b"w", b"w", ttl=5) is True  # renewed
    clock.now += 4.5
    assert await store.get("k") == b"w"
    clock.now += 0.5
    assert await store.get("k") is None
    assert await store.delete("k") is False


async def test_memory_edges_with_an_injected_clock() -> None:
    clock = FakeClock()
    with trio.fail_after(5):
        async with MemoryStore(clock=clock) as store:
            await _exact_edges(store, clock)


async def test_memory_sweeps_expired_keys_nobody_reads() -> None:
    clock = FakeClock()
    with trio.fail_after(5):
        async with MemoryStore(clock=clock) as store:
            for i in range(1000):
                await store.put(f"k{i}", b"v", ttl=1)
            await store.put("k0", b"permanent")  # a stale heap entry must not delete it
            clock.now += 2
            await store.put("trigger", b"x")
            data = store._data
            assert set(data.kv) == {"k0", "trigger"}
            assert not data.expires and not data.heap


async def test_sqlite_edges_with_an_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    with trio.fail_after(10):
        async with await SqliteStore.open(tmp_path / "x.db", clock=clock) as store:
            await _exact_edges(store, clock)
            for i in range(150):
                await store.put(f"old{i}", b"v", ttl=1)
            clock.now += 2
            await store.put("a", b"x")  # each write sweeps up to 100 expired keys
            await store.put("b", b"x")
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        (left,) = conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'old%'").fetchone()
    finally:
        conn.close()
    assert left == 0


async def test_a_version_1_sqlite_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)  # the schema of trouper's first store, as it was written
    try:
        conn.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO meta VALUES ('schema_version', '1');"
            "CREATE TABLE logs (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE records (log TEXT NOT NULL, id INTEGER NOT NULL,"
            " data BLOB NOT NULL, PRIMARY KEY (log, id));"
            "CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
            "INSERT INTO kv VALUES ('owner', X'6e6f646531');"
            "INSERT INTO logs VALUES ('room', 7);"
        )
        conn.commit()
    finally:
        conn.close()
    clock = FakeClock()
    with trio.fail_after(10):
        async with await SqliteStore.open(db, clock=clock) as store:
            assert await store.get("owner") == b"node1"  # old keys never expire
            assert await store.append("room", b"x") == 8
            await store.put("lease", b"v", ttl=1)
            clock.now += 1
            assert await store.get("lease") is None
            assert await store.get("owner") == b"node1"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT value FROM meta").fetchone() == ("2",)
    finally:
        conn.close()


def ttl_machine(backend: str, tmp_path: Path) -> type[RuleBasedStateMachine]:
    """Keys with and without ttls under a clock the test moves: the store
    must agree with a model of (value, expires_at) at every step."""

    class TtlMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = FakeClock()
            self.model: dict[str, tuple[bytes, float | None]] = {}
            clock, path = self.clock, tmp_path / f"ttl-{uuid.uuid4().hex}.db"

            @asynccontextmanager
            async def opened() -> AsyncIterator[Store]:
                if backend == "memory":
                    async with MemoryStore(clock=clock) as store:
                        yield store
                else:
                    async with await SqliteStore.open(path, clock=clock) as store:
                        yield store

            self.trio: TrioThread[Store] = TrioThread(opened, 10.0)

        def live(self, key: str) -> bytes | None:
            value, at = self.model.get(key, (None, None))
            if at is not None and at <= self.clock.now:
                del self.model[key]
                return None
            return value

        def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
            async def go() -> Any:
                return await getattr(self.trio.value, method)(*args, **kwargs)

            return self.trio.run(go)

        @rule(key=KEYS, value=st.binary(max_size=4), ttl=TTLS)
        def put(self, key: str, value: bytes, ttl: float | None) -> None:
            self.call("put", key, value, ttl=ttl)
            self.model[key] = (value, None if ttl is None else self.clock.now + ttl)

        @rule(key=KEYS, right=st.booleans(), new=st.none() | st.binary(max_size=4), ttl=TTLS)
        def compare_and_set(
            self, key: str, right: bool, new: bytes | None, ttl: float | None
        ) -> None:
            current = self.live(key)
            expected = current if right else b"never stored"
            won = self.call("compare_and_set", key, expected, new, ttl=ttl)
            assert won is right
            if won:
                if new is None:
                    self.model.pop(key, None)
                else:
                    self.model[key] = (new, None if ttl is None else self.clock.now + ttl)

        @rule(key=KEYS)
        def get(self, key: str) -> None:
            assert self.call("get", key) == self.live(key)

        @rule(key=KEYS)
        def delete(self, key: str) -> None:
            existed = self.live(key) is not None
            self.model.pop(key, None)
            assert self.call("delete", key) is existed

        @rule(dt=st.sampled_from([1.0, 0.5]))
        def advance(self, dt: float) -> None:
            self.clock.now += dt

        def teardown(self) -> None:
            try:
                for key in ("a", "b", "c"):
                    assert self.call("get", key) == self.live(key)
            finally:
                self.trio.close()

    return TtlMachine


KEYS = st.sampled_from(["a", "b", "c"])
# Whole steps of the clock and ttls of one or two steps: expiries land
# exactly on "now" often, where an off-by-one in "expires_at <= now" shows.
TTLS = st.sampled_from([None, 1.0, 2.0, 0.5])


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_expiry_matches_a_model_under_a_moving_clock(backend: str, tmp_path: Path) -> None:
    run_state_machine_as_test(
        ttl_machine(backend, tmp_path),
        settings=settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )
