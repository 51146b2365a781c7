"""A session that gets no heartbeat expires: its actor stops (watchers get
``Terminated``), ``SessionEnded(..., "expired")`` is published, and its
record and every index entry are gone from the store, on Redis (raw
commands on the prefixed keys) and on sqlite.

The Redis and sqlite tests use real time (TTLs of 1 s: a store's TTL is
wall-clock); the heartbeat and expiry logic itself is also run under the
autojump clock on the memory store, where a 30 s TTL costs nothing.
"""

import json
from pathlib import Path

import pytest
import trio
import trio.testing
from collab_sessions_helpers import Watch, Watcher, open_indexes, url_for
from examples.collab._shared import SESSION_EVENTS, SessionEnded
from examples.collab.sessions import SessionService, spawn_session_service
from examples.collab.sessions._redis_store import redis_prefix

import trouper
import trouper.pools


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_an_idle_session_expires_and_leaves_no_index_entry(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(20):
        async with trouper.open_node() as node, open_indexes(url) as raw:
            await spawn_session_service(node, store_url=url, sweep_interval=0.2)
            sessions = node.proxy(SessionService, timeout=5)
            ended_send, ended = trio.open_memory_channel[trouper.Terminated](10)
            watcher = await node.spawn(Watcher, ended_send)
            async with node.subscribe(SESSION_EVENTS) as events:
                short = await sessions.create("ada", "conn-1", ttl=1.0, data={"tab": "1"})
                long = await sessions.create("ada", "conn-2", ttl=60.0)
                actor = await node.lookup(f"session:{short.id}")
                await watcher.tell(Watch(actor))
                assert await raw.anywhere(short.id, "ada", "conn-1") == [
                    "session",
                    "user index",
                    "connection index",
                    "active",
                ]

                assert await events.receive() == SessionEnded(short.id, "ada", "expired")
                assert (await ended.receive()).ref == actor
                assert await raw.anywhere(short.id, "ada", "conn-1") == []
                with pytest.raises(trouper.ActorNotFound, match="no session"):
                    await sessions.get(short.id)
                # The other session of the same user is untouched.
                assert await raw.anywhere(long.id, "ada", "conn-2") == [
                    "session",
                    "user index",
                    "connection index",
                    "active",
                ]
                assert [s.id for s in await sessions.list(user="ada")] == [long.id]
                with trio.move_on_after(0.5):  # one announcement, not two
                    extra = await events.receive()
                    raise AssertionError(f"a second event: {extra}")


async def test_heartbeats_keep_a_session_alive_then_it_expires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    url = "memory://sessions-autojump"
    async with trouper.open_node() as node, open_indexes(url) as raw:
        await spawn_session_service(node, store_url=url, default_ttl=30.0)
        sessions = node.proxy(SessionService, timeout=5)
        ended_send, ended = trio.open_memory_channel[trouper.Terminated](10)
        watcher = await node.spawn(Watcher, ended_send)
        async with node.subscribe(SESSION_EVENTS) as events:
            record = await sessions.create("bo", "tab-9")
            assert record.ttl == 30.0
            await watcher.tell(Watch(await node.lookup(f"session:{record.id}")))
            start = trio.current_time()
            for _ in range(10):  # 200 s: more than six TTLs
                await trio.sleep(20)
                beat = await sessions.heartbeat(record.id)
                assert beat.last_heartbeat >= record.last_heartbeat
            assert trio.current_time() - start >= 6 * 30
            assert (await sessions.get(record.id)).id == record.id

            last = trio.current_time()
            assert await events.receive() == SessionEnded(record.id, "bo", "expired")
            assert 30 <= trio.current_time() - last <= 31  # exactly one TTL after the last beat
            assert "normal" in (await ended.receive()).reason
            assert await raw.anywhere(record.id, "bo", "tab-9") == []
            with pytest.raises(trouper.ActorNotFound):
                await sessions.heartbeat(record.id)


@pytest.mark.parametrize("kind", ["redis", "sqlite", "memory", "postgres"])
async def test_delete_ends_the_session_and_cleans_up(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(20):
        async with trouper.open_node() as node, open_indexes(url) as raw:
            await spawn_session_service(node, store_url=url)
            sessions = node.proxy(SessionService, timeout=5)
            ended_send, ended = trio.open_memory_channel[trouper.Terminated](10)
            watcher = await node.spawn(Watcher, ended_send)
            async with node.subscribe(SESSION_EVENTS) as events:
                record = await sessions.create("cy", "c", data={"doc": "readme"})
                await watcher.tell(Watch(await node.lookup(f"session:{record.id}")))
                assert await sessions.delete(record.id) is True
                assert await events.receive() == SessionEnded(record.id, "cy", "deleted")
                await ended.receive()
                assert await raw.anywhere(record.id, "cy", "c") == []
                assert await sessions.delete(record.id) is False
                assert await sessions.list(user="cy") == []


@pytest.mark.parametrize("kind", ["redis", "sqlite", "memory", "postgres"])
async def test_list_update_and_the_connection_rule(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url=url)
            sessions = node.proxy(SessionService, timeout=5)
            a1 = await sessions.create("ada", "a-1")
            a2 = await sessions.create("ada", "a-2", data={"k": "v"})
            b1 = await sessions.create("bo", "b-1")

            def ids(records: list) -> list[str]:  # type: ignore[type-arg]
                return [r.id for r in records]

            assert ids(await sessions.list(user="ada")) == sorted([a1.id, a2.id])
            assert ids(await sessions.list(connection="b-1")) == [b1.id]
            assert ids(await sessions.list(user="ada", connection="a-2")) == [a2.id]
            assert ids(await sessions.list(user="bo", connection="a-2")) == []
            assert ids(await sessions.list(active=True)) == sorted([a1.id, a2.id, b1.id])
            assert len(await sessions.list(active=True, limit=2)) == 2

            updated = await sessions.update(a2.id, {"k": "w", "doc": "x"})
            assert updated.data == {"k": "w", "doc": "x"}
            assert (await sessions.get(a2.id)).data == {"k": "w", "doc": "x"}
            [listed] = await sessions.list(connection="a-2")
            assert listed.data == {"k": "w", "doc": "x"}  # written through to the store

            # The same user on the same connection gets its live session back...
            again = await sessions.create("ada", "a-1")
            assert again.id == a1.id
            # ...another user is refused, and nothing changes.
            with pytest.raises(trouper.InvalidArgument, match="connection 'a-1' is in use"):
                await sessions.create("mallory", "a-1")
            assert ids(await sessions.list(connection="a-1")) == [a1.id]
            assert await sessions.list(user="mallory") == []


async def test_the_redis_layout_is_aetherflows(redis_url: str) -> None:
    prefix = redis_prefix(redis_url)
    with trio.fail_after(10):
        async with trouper.open_node() as node, trouper.pools.redis(redis_url) as raw:
            await spawn_session_service(node, store_url=redis_url)
            sessions = node.proxy(SessionService)
            record = await sessions.create("ada", "ws-7", ttl=30.0, data={"doc": "readme"})
            key = f"{prefix}session:{record.id}"

            async def kind(name: str) -> bytes:
                return bytes(await raw.execute("TYPE", name))

            assert await kind(key) == b"hash"
            assert await kind(f"{prefix}sessions:user:ada") == b"set"
            assert await kind(f"{prefix}sessions:conn:ws-7") == b"set"
            assert await kind(f"{prefix}sessions:active") == b"zset"
            assert await kind(f"{prefix}sessions:meta") == b"hash"
            reply = await raw.execute("HGETALL", key)
            flat = reply if isinstance(reply, list) else [x for kv in reply.items() for x in kv]
            pairs = zip(flat[::2], flat[1::2], strict=True)
            fields = {bytes(k).decode(): bytes(v).decode() for k, v in pairs}
            assert fields["user"] == "ada" and fields["connection"] == "ws-7"
            assert json.loads(fields["data"]) == {"doc": "readme"}
            assert fields["node"] == node.id and float(fields["ttl"]) == 30.0
            assert 28_000 < int(await raw.execute("PTTL", key)) <= 30_000
            seconds, micros = await raw.execute("TIME")
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            score = float(await raw.execute("ZSCORE", f"{prefix}sessions:active", record.id))
            assert abs(score - (now_ms + 30_000)) < 2_000  # scored by expiry time
            meta = await raw.execute("HGET", f"{prefix}sessions:meta", record.id)
            assert bytes(meta) == b"ada\nws-7"
            # A heartbeat renews the hash's TTL and moves the score on.
            await raw.execute("PEXPIRE", key, 5_000)
            await sessions.heartbeat(record.id)
            assert int(await raw.execute("PTTL", key)) > 28_000
            active = f"{prefix}sessions:active"
            assert float(await raw.execute("ZSCORE", active, record.id)) >= score
