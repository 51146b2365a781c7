"""Hostile input: every bound of docs/collab-sessions.md is reached, refused
with ``InvalidArgument`` naming the problem, and nothing else is affected
(the offender's other sessions and other users carry on)."""

import math
from pathlib import Path

import pytest
import trio
from collab_sessions_helpers import url_for
from examples.collab.sessions import (
    MAX_DATA_BYTES,
    MAX_SESSIONS_PER_USER,
    SessionLimits,
    SessionNotFound,
    SessionService,
    spawn_session_service,
)

import trouper
from redis_helper import free_port


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_one_user_cannot_open_sessions_without_end(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(25):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url=url)
            sessions = node.proxy(SessionService, timeout=10)
            bystander = await sessions.create("bo", "bo-conn")
            mine = [await sessions.create("eve", f"c{i}") for i in range(MAX_SESSIONS_PER_USER)]
            for i in range(3):  # the 101st, 102nd...: refused, each time
                with pytest.raises(trouper.InvalidArgument, match="'eve' has 100 live sessions"):
                    await sessions.create("eve", f"more-{i}")
            assert len(await sessions.list(user="eve", limit=1000)) == MAX_SESSIONS_PER_USER
            assert await sessions.list(connection="more-0") == []
            # Her sessions still work; the others' are untouched; a deleted
            # one makes room again.
            await sessions.heartbeat(mine[0].id)
            await sessions.heartbeat(bystander.id)
            assert (await sessions.create("cy", "cy-conn")).user == "cy"
            assert await sessions.delete(mine[0].id)
            assert (await sessions.create("eve", "again")).user == "eve"


async def test_a_node_hosts_a_bounded_number_of_sessions() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            limits = SessionLimits(max_sessions_per_node=3)
            await spawn_session_service(node, store_url="memory://", limits=limits)
            sessions = node.proxy(SessionService)
            made = [await sessions.create(f"u{i}", f"c{i}") for i in range(3)]
            with pytest.raises(trouper.InvalidArgument, match="this node hosts 3 sessions"):
                await sessions.create("u9", "c9")
            assert await sessions.list(user="u9") == []
            await sessions.delete(made[0].id)
            with trio.fail_after(5):  # the slot frees once the actor has stopped
                while True:
                    try:
                        await sessions.create("u9", "c9")
                        break
                    except trouper.InvalidArgument:
                        await trio.sleep(0.01)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"user": "", "connection": "c"}, "user is empty"),
        ({"user": "x" * (10 << 20), "connection": "c"}, "user has 10485760 characters"),
        ({"user": "ada", "connection": "c" * 129}, "connection has 129 characters"),
        ({"user": "ad\x00a", "connection": "c"}, "user contains a control character"),
        ({"user": "ada", "connection": "c\n"}, "connection contains a control character"),
        ({"user": "ada", "connection": "c", "ttl": -1.0}, "ttl -1.0 is out of range"),
        ({"user": "ada", "connection": "c", "ttl": 0.0}, "ttl 0.0 is out of range"),
        ({"user": "ada", "connection": "c", "ttl": math.nan}, "ttl nan is out of range"),
        ({"user": "ada", "connection": "c", "ttl": math.inf}, "ttl inf is out of range"),
        ({"user": "ada", "connection": "c", "ttl": 86_401.0}, "between 1 and 86400"),
        (
            {"user": "ada", "connection": "c", "data": {str(i): "" for i in range(33)}},
            "data has 33 keys, more than the 32",
        ),
        ({"user": "ada", "connection": "c", "data": {"": "v"}}, "data key '' must have"),
        ({"user": "ada", "connection": "c", "data": {"k" * 65: "v"}}, "1 to 64 characters"),
        (
            {"user": "ada", "connection": "c", "data": {"k": "v" * MAX_DATA_BYTES}},
            f"data holds {MAX_DATA_BYTES + 1} bytes, more than the {MAX_DATA_BYTES}",
        ),
        (
            {"user": "ada", "connection": "c", "data": {"k": "v" * (10 << 20)}},
            "more than the 4096 allowed",
        ),
    ],
)
async def test_bad_arguments_are_refused_by_name(kwargs: dict, words: str) -> None:  # type: ignore[type-arg]
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url="memory://")
            sessions = node.proxy(SessionService)
            with pytest.raises(trouper.InvalidArgument) as refused:
                await sessions.create(**kwargs)
            assert words in str(refused.value)
            assert await sessions.list(active=True) == []  # nothing was written


async def test_ids_updates_and_lists_are_checked() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url="memory://")
            sessions = node.proxy(SessionService)
            record = await sessions.create("ada", "c", data={"k": "v"})
            for bad in ("", "../../etc/passwd", "session:*", "A" * 23, "A" * 10_000):
                with pytest.raises(trouper.InvalidArgument, match="malformed"):
                    await sessions.get(bad)
                with pytest.raises(trouper.InvalidArgument, match="malformed"):
                    await sessions.heartbeat(bad)
            with pytest.raises(trouper.InvalidArgument, match="data has 40 keys"):
                await sessions.update(record.id, {str(i): "" for i in range(40)})
            assert (await sessions.get(record.id)).data == {"k": "v"}  # unchanged
            with pytest.raises(trouper.InvalidArgument, match="'data'"):
                await sessions.update(record.id, {"k": 1})  # type: ignore[dict-item]
            for limit in (0, -1, 1001):
                with pytest.raises(trouper.InvalidArgument, match=f"limit {limit} is out"):
                    await sessions.list(active=True, limit=limit)
            with pytest.raises(trouper.ActorNotFound):
                await sessions.update("B" * 22, {})


async def test_a_bad_service_configuration_is_refused() -> None:
    async with trouper.open_node() as node:
        with pytest.raises(trouper.ConfigurationError, match="default_ttl"):
            await spawn_session_service(node, default_ttl=0.1)
        with pytest.raises(trouper.ConfigurationError, match="sweep_interval"):
            await spawn_session_service(node, sweep_interval=math.nan)
        with trio.fail_after(10):  # a store that cannot be opened refuses the spawn, named
            for url, words in [
                ("nosuch://x", "no store registered for nosuch://"),
                ("redis://127.0.0.1:1/0?bogus=1", "unknown redis URL option 'bogus'"),
                (f"redis://127.0.0.1:{free_port()}/0", "Unable to establish a connection"),
            ]:
                with pytest.raises(trouper.SpawnRefused) as refused:
                    await spawn_session_service(node, store_url=url)
                assert words in str(refused.value.__cause__)
            assert "collab-sessions" not in node.registry.local()


async def test_lookups_of_unknown_sessions_do_not_open_the_breaker() -> None:
    """A not-found is the caller's answer, not the service's failure: a
    proxy's breaker (5 failures in a row by default) must not open over it."""
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url="memory://")
            sessions = node.proxy(SessionService)
            for _ in range(20):
                with pytest.raises(SessionNotFound) as missing:
                    await sessions.heartbeat("N" * 22)
                assert isinstance(missing.value, trouper.ActorNotFound)
                assert not missing.value.is_retryable
            assert (await sessions.create("ada", "c")).user == "ada"  # no CircuitOpen


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_the_per_user_bound_holds_when_two_nodes_race(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    limits = SessionLimits(max_sessions_per_user=5)
    with trio.fail_after(20):
        async with trouper.open_node() as a, trouper.open_node() as b:
            made: list[str] = []
            refused: list[str] = []

            async def flood(node: trouper.Node, side: str) -> None:
                ref = await spawn_session_service(node, store_url=url, limits=limits)
                sessions = node.proxy(SessionService, members=[ref])

                async def one(i: int) -> None:
                    try:
                        made.append((await sessions.create("eve", f"{side}{i}")).id)
                    except trouper.InvalidArgument as exc:
                        refused.append(str(exc))

                async with trio.open_nursery() as nursery:
                    for i in range(15):
                        nursery.start_soon(one, i)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood, a, "a")
                nursery.start_soon(flood, b, "b")
            assert len(made) == 5 and len(refused) == 25
            assert all("'eve' has 5 live sessions" in reason for reason in refused)
            listed = await a.proxy(SessionService, balance="local-first").list(user="eve")
            assert sorted(r.id for r in listed) == sorted(made)


async def test_heartbeats_in_a_loop_hold_one_timer() -> None:
    """A client that heartbeats as fast as it can (a long TTL) does not grow
    the node's timers: each heartbeat replaces its session's one timer."""
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url="memory://")
            sessions = node.proxy(SessionService)
            record = await sessions.create("ada", "c", ttl=3600.0)
            before = node.stats().timers
            for _ in range(1000):
                await sessions.heartbeat(record.id)
            assert node.stats().timers <= before + 1
