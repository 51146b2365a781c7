"""What only the ``postgres://`` store has: migrations, and a server of its own.

The shared suites (conformance, restart, TTL, fence) run on postgres through
the ``store_url`` fixture; this file adds the migration race, two OS
processes appending at once, large values, and a server killed and
restarted under the store.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from pg_helpers import wait_until
from servers import PostgresServer
from trouper._errors import ConfigurationError
from trouper.pools import postgres
from trouper.stores import StoreError, StoreUnavailable, open_store
from trouper.stores._pg_schema import MIGRATIONS, SCHEMA_VERSION, migrate
from trouper.stores._postgres import PostgresStore

COUNT = 200


async def test_two_nodes_migrating_at_once_apply_each_step_once(postgres_url: str) -> None:
    # A second step that fails if it runs twice, as any real CREATE would.
    steps = {**MIGRATIONS, 2: ("CREATE TABLE extra (a int)",)}
    applied: list[int] = []
    go = trio.Event()

    async def node() -> None:
        async with postgres(postgres_url, min=1, max=1) as pool:
            await go.wait()
            applied.append(await migrate(pool, pool.name, steps))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(node)
            await trio.testing.wait_all_tasks_blocked()
            go.set()
        assert sorted(applied) == [0, 0, 0, 2]
        async with postgres(postgres_url) as pool:
            rows = await pool.fetch("SELECT version FROM trouper_schema_version ORDER BY version")
            assert rows == [(1,), (2,)]


async def test_store_opened_from_many_tasks_at_once_migrates_once(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(4):

                async def one(i: int = i) -> None:
                    async with open_store(url) as store:
                        await store.append("log", b"%d" % i)

                nursery.start_soon(one)
        async with postgres(postgres_url) as pool:
            assert await pool.fetch("SELECT version FROM trouper_schema_version") == [
                (SCHEMA_VERSION,)
            ]
            assert await pool.fetchval("SELECT last_id FROM trouper_logs") == 4


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    with trio.fail_after(20):
        async with open_store(url):
            pass
        async with postgres(postgres_url) as pool:
            await pool.execute("INSERT INTO trouper_schema_version (version) VALUES (99)")
        with pytest.raises(StoreError, match="schema version 99"):
            async with open_store(url):
                pass


# One writer process: waits for the go file, then appends and increments a
# shared counter with compare_and_set; prints the ids it got. (Kept here
# rather than in store_append_worker.py, whose arguments the shared
# process test owns.)
WRITER = """
import json, sys, time
from pathlib import Path
import trio
from trouper.stores import open_store

url, tag, count, ready, go = sys.argv[1:]

async def work():
    ids = []
    async with open_store(url) as store:
        for i in range(int(count)):
            ids.append(await store.append("room", f"{tag}:{i}".encode()))
            while i % 2:
                old = await store.get("counter")
                if await store.compare_and_set("counter", old, b"%d" % (int(old or 0) + 1)):
                    break
    return ids

Path(ready).touch()
deadline = time.monotonic() + 30
while not Path(go).exists() and time.monotonic() < deadline:
    time.sleep(0.001)
print(json.dumps(trio.run(work)))
"""


async def test_two_processes_append_to_one_log(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    go = tmp_path / "go"
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(tag: str) -> None:
        cmd = [sys.executable, "-c", WRITER, url, tag, str(COUNT), str(tmp_path / tag), str(go)]
        results[tag] = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for tag in "AB":
                nursery.start_soon(run, tag)
            for tag in "AB":  # the workers touch their ready file once started
                ready = trio.Path(tmp_path / tag)
                while not await ready.exists():  # noqa: ASYNC110 - a file, not an event
                    await trio.sleep(0.01)
            await trio.Path(go).touch()

    ids = {}
    for tag, proc in results.items():
        assert proc.returncode == 0, proc.stderr.decode()
        ids[tag] = json.loads(proc.stdout)
        assert ids[tag] == sorted(set(ids[tag])), f"{tag} saw ids out of order"
    assert sorted(ids["A"] + ids["B"]) == list(range(1, 2 * COUNT + 1))
    with trio.fail_after(10):
        async with open_store(url) as store:
            stored = dict(await store.read("room", limit=10 * COUNT))
            assert await store.get("counter") == str(COUNT).encode()  # no lost CAS update
    for tag in "AB":
        for i, record_id in enumerate(ids[tag]):
            assert stored[record_id] == f"{tag}:{i}".encode()


async def test_large_values(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    big = bytes(range(256)) * (64 * 1024)  # 16 MiB, every byte value
    with trio.fail_after(60):
        async with open_store(url) as store:
            await store.put("big", big)
            assert await store.get("big") == big
            assert await store.append("log", big) == 1
            assert await store.read("log") == [(1, big)]
            assert await store.compare_and_set("big", big, b"small") is True


async def test_ttl_and_fence_hooks(postgres_url: str) -> None:
    """The backend's TTL and fenced append, through the hooks the shared
    ``put(ttl=)``/``append(fence=)`` call (their suites cover the API)."""
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    with trio.fail_after(20):
        async with open_store(url) as opened:
            assert isinstance(opened, PostgresStore)
            store = opened
            await store._do_put("lease", b"a", 0.2)
            await store._do_put("forever", b"f", None)
            assert await store.get("lease") == b"a"
            while await store.get("lease") is not None:  # noqa: ASYNC110 - the server's clock
                await trio.sleep(0.02)
            assert await store.delete("lease") is False  # expired reads as absent
            assert await store._do_compare_and_set("lease", None, b"b", 60.0) is True
            assert await store._do_compare_and_set("lease", None, b"c", None) is False
            assert await store.get("forever") == b"f"

            assert await store._do_append("log", b"1", ("lease", b"b")) == 1
            with pytest.raises(StoreError, match="token"):
                await store._do_append("log", b"2", ("lease", b"stale"))
            with pytest.raises(StoreError, match="token"):
                await store._do_append("log", b"2", ("nobody", b"b"))
            assert await store.read("log") == [(1, b"1")]  # nothing was written


async def test_store_survives_a_server_restart() -> None:
    with PostgresServer() as server, trio.fail_after(60):
        url = server.create_database().replace("postgresql://", "postgres://", 1)
        async with open_store(url + "?checkout_timeout=0.5") as store:
            assert await store.append("log", b"before") == 1
            await trio.to_thread.run_sync(server.kill)
            # each broken connection fails its call, then no connection can
            # be opened: the pool's timeout, as a store error; all retryable
            while True:
                with pytest.raises(StoreUnavailable) as info:
                    await store.append("log", b"lost")
                assert info.value.is_retryable
                if "no member came free" in str(info.value):
                    break
            await trio.to_thread.run_sync(server.start)
            while True:
                try:
                    new_id = await store.append("log", b"after")
                    break
                except StoreError as exc:
                    assert exc.is_retryable, exc
                    await trio.sleep(0.05)
            assert new_id == 2
            assert await store.read("log") == [(1, b"before"), (2, b"after")]


@pytest.mark.parametrize(
    "url", ["postgres://", "postgres://u:secret@host:notaport/db", "postgresql://u:secret@h/d?x=1"]
)
def test_bad_urls_fail_at_open_store_without_echoing_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_store(url)
    assert "secret" not in str(info.value)


async def test_expired_keys_are_swept_by_later_writes(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql://", "postgres://", 1)
    with trio.fail_after(20):
        async with open_store(url) as opened, postgres(postgres_url) as pool:
            assert isinstance(opened, PostgresStore)
            for i in range(5):
                await opened._do_put(f"gone/{i}", b"x", 0.05)
            await opened._do_put("kept", b"k", 60.0)

            async def expired() -> bool:
                return bool(
                    await pool.fetchval(
                        "SELECT count(*) FROM trouper_kv WHERE expires_at <= clock_timestamp()"
                    )
                    == 5
                )

            await wait_until(expired)
            assert await pool.fetchval("SELECT count(*) FROM trouper_kv") == 6  # still there
            await opened.put("new", b"n")  # any write sweeps
            keys = await pool.fetch("SELECT key FROM trouper_kv ORDER BY key")
            assert keys == [("kept",), ("new",)]
            assert await opened.compare_and_set("gone/0", None, b"again") is True
