"""Sessions outlive the actors that hold them: a node that closes leaves its
sessions' records in the store; a heartbeat to any node re-creates the actor
there (one actor, even when two nodes race), and a session nobody heartbeats
any more is swept from the indexes by another node's service, which
announces its end.

Real time throughout (the stores' TTLs are wall-clock): TTLs of 1 s.
"""

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from collab_sessions_helpers import eventually, open_indexes, url_for
from examples.collab._shared import SESSION_EVENTS, SessionEnded
from examples.collab.sessions import SERVICE_NAME, SessionService, spawn_session_service

import trouper

COOKIE = "collab-sessions-test"


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_the_sweep_cleans_up_after_a_node_that_closed(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(20):
        async with trouper.open_node("b") as b, open_indexes(url) as raw:
            await spawn_session_service(b, store_url=url, sweep_interval=0.2)
            async with b.subscribe(SESSION_EVENTS) as events:
                async with trouper.open_node("a") as a:
                    await spawn_session_service(a, store_url=url, sweep_interval=60)
                    record = await a.proxy(SessionService).create("ada", "c-a", ttl=1.0)
                # a is gone, and its actor with it, before the TTL ran out:
                # nothing expired the session; the record is still there.
                assert "session" in await raw.anywhere(record.id, "ada", "c-a")
                assert await events.receive() == SessionEnded(record.id, "ada", "expired")
                assert await raw.anywhere(record.id, "ada", "c-a") == []
                with pytest.raises(trouper.ActorNotFound):
                    await b.proxy(SessionService).heartbeat(record.id)


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_heartbeats_keep_a_session_alive_across_a_node_restart(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    ttl = 1.0
    with trio.fail_after(25):
        async with open_indexes(url) as raw:
            async with trouper.open_node() as first:
                await spawn_session_service(first, store_url=url, sweep_interval=0.2)
                sessions = first.proxy(SessionService)
                record = await sessions.create("ada", "tab", ttl=ttl, data={"doc": "d1"})
                for _ in range(3):
                    await trio.sleep(ttl / 3)
                    await sessions.heartbeat(record.id)
            # The node restarted: a new node (a new id) on the same store.
            async with trouper.open_node() as second:
                await spawn_session_service(second, store_url=url, sweep_interval=0.2)
                sessions = second.proxy(SessionService)
                beats = 0
                start = trio.current_time()
                while trio.current_time() - start < 3 * ttl:
                    beat = await sessions.heartbeat(record.id)
                    beats += 1
                    await trio.sleep(ttl / 3)
                assert beat.created == record.created and beat.data == {"doc": "d1"}
                assert beats >= 6
                # The actor lives here now, and the sweep left the session alone.
                assert f"session:{record.id}" in second.registry.local()
                assert (await sessions.get(record.id)).id == record.id
                assert await raw.anywhere(record.id, "ada", "tab") == [
                    "session",
                    "user index",
                    "connection index",
                    "active",
                ]


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_two_nodes_share_sessions(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b,
        ):
            await a.wait_for_members(2, timeout=5)
            service_a = await spawn_session_service(a, store_url=url)
            service_b = await spawn_session_service(b, store_url=url)
            # Calls across the wire: records, Opened and refusals travel.
            remote = b.proxy(SessionService, members=[service_a])
            opened = await remote.open("cy", "c-remote", data={"k": "v"})
            assert opened.created and opened.record.data == {"k": "v"}
            assert (await remote.list(user="cy")) == [opened.record]
            with pytest.raises(trouper.InvalidArgument, match=r"ttl -1\.0 is out of range"):
                await remote.create("cy", "c-other", ttl=-1.0)
            with pytest.raises(trouper.RemoteError) as boxed:  # not a trouper class
                await remote.get("Z" * 22)
            assert boxed.value.type_name.endswith(".SessionNotFound")
            on_a = a.proxy(SessionService, balance="local-first")
            on_b = b.proxy(SessionService, members=[service_b])  # b's own service only
            async with b.subscribe(SESSION_EVENTS) as events:
                # The actor will live on a: its event must cross to b's subscriber.
                await eventually(_knows_subscriber(a))
                record = await on_a.create("ada", "c-1", ttl=30.0)
                actor = await b.lookup(f"session:{record.id}", timeout=5)
                assert actor.node_id == "a"

                assert (await on_b.get(record.id)).id == record.id
                beat = await on_b.heartbeat(record.id)
                assert beat.last_heartbeat > record.last_heartbeat
                assert (await on_b.update(record.id, {"x": "1"})).data == {"x": "1"}
                assert (await on_a.get(record.id)).data == {"x": "1"}
                assert f"session:{record.id}" not in b.registry.local()  # no second actor

                # a's actor publishes its end; b's subscriber gets it.
                assert await on_b.delete(record.id) is True
                assert await events.receive() == SessionEnded(record.id, "ada", "deleted")
                with pytest.raises(trouper.ActorNotFound):
                    await on_a.get(record.id)


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_two_nodes_racing_to_recreate_a_session_end_with_one_actor(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(25):
        async with trouper.open_node("gone") as gone:  # creates it, then closes
            await spawn_session_service(gone, store_url=url)
            record = await gone.proxy(SessionService).create("ada", "c", ttl=30.0)
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b,
        ):
            await a.wait_for_members(2, timeout=5)
            services = [await spawn_session_service(node, store_url=url) for node in (a, b)]
            beats = []

            async def beat(node: trouper.Node, ref: trouper.ActorRef) -> None:
                proxy = node.proxy(SessionService, members=[ref], timeout=10)
                beats.append(await proxy.heartbeat(record.id))

            async with trio.open_nursery() as nursery:
                for node, ref in zip((a, b), services, strict=True):
                    nursery.start_soon(beat, node, ref)
            assert [r.id for r in beats] == [record.id, record.id]

            name = f"session:{record.id}"
            hosts = [node.id for node in (a, b) if name in node.registry.local()]
            assert len(hosts) == 1, hosts
            found_a = await a.lookup(name, timeout=5)
            await eventually(lambda: _found(b, name, found_a))
            assert found_a.node_id == hosts[0]
            assert all(ref.path.endswith(SERVICE_NAME) for ref in services)


async def _found(node: trouper.Node, name: str, expected: trouper.ActorRef) -> bool:
    try:
        return await node.lookup(name) == expected
    except trouper.ActorNotFound:
        return False


def _knows_subscriber(node: trouper.Node) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return node.subscribers(SESSION_EVENTS) >= 1

    return check
