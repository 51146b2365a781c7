"""Groups (Erlang's ``pg``) on one node and across two and three real nodes.

Nodes run in this process on 127.0.0.1 port 0, except the last test's
victim, a real node process killed with SIGKILL. States another node reaches
are polled (``eventually``) under ``trio.fail_after``, never slept for.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import trouper
from trouper.protocols import GroupUpdate, WireRef
from trouper.runtime._groups import Groups

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from services_actors import Member, WhereAreYou  # noqa: E402
from test_remote_bounds import Big, RawPeer, default, remoting  # noqa: E402

COOKIE = b"bounds-cookie"  # RawPeer's
FAST: dict[str, Any] = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 1.5}


class Plain(trouper.Actor):
    @trouper.handler
    async def where(self, msg: WhereAreYou) -> str:
        return self.ctx.node.id


class Slow(trouper.Actor):
    """A member that starts and stops only when the test lets it."""

    __trouper_group__ = "slow"

    def __init__(self, started: trio.Event, stopping: trio.Event, release: trio.Event) -> None:
        self.started, self.stopping, self.release = started, stopping, release

    async def on_start(self) -> None:
        await self.started.wait()

    async def on_stop(self) -> None:
        self.stopping.set()
        await self.release.wait()


class BadGroup(trouper.Actor):
    __trouper_group__ = ""


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll a state another node reaches; the caller bounds it with ``fail_after``."""
    while True:
        if predicate():
            return
        await trio.sleep(0.005)


@asynccontextmanager
async def cluster(*names: str, **options: Any) -> AsyncIterator[list[trouper.Node]]:
    """Nodes named ``names``: the first listens (with ``options``), the
    others seed from it; all of them see each other up."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(
            trouper.open_node(names[0], listen="tcp://127.0.0.1:0", cookie=COOKIE, **options)
        )
        nodes = [first]
        for name in names[1:]:
            node = trouper.open_node(
                name, listen="tcp://127.0.0.1:0", seeds=first.addresses, cookie=COOKIE
            )
            nodes.append(await stack.enter_async_context(node))
        for node in nodes:
            await node.wait_for_members(len(names))
        yield nodes


# ------------------------------------------------------------ one node


async def test_join_leave_members_and_groups_on_one_node() -> None:
    with trio.fail_after(10):
        async with trouper.open_node("solo") as node:
            a, b = await node.spawn(Plain), await node.spawn(Plain)
            reg = node.registry
            assert reg.members("g") == [] and reg.groups() == []
            reg.join("g", a)
            reg.join("g", b)
            reg.join("g", a)  # twice is once
            reg.join("h", b)
            assert reg.members("g") == [a, b]
            assert reg.groups() == ["g", "h"]
            reg.leave("g", a)
            reg.leave("g", a)  # not in it: nothing happens
            assert reg.members("g") == [b]
            await node.stop(b)
            assert reg.members("g") == [] and reg.groups() == []
            # Only live actors of this node can join, under a real group name.
            with pytest.raises(trouper.ConfigurationError, match="dead"):
                reg.join("g", b)
            with pytest.raises(trouper.ConfigurationError, match="not an actor of this node"):
                reg.join("g", trouper.ActorRef("elsewhere", "/user/x", 1))
            with pytest.raises(trouper.ConfigurationError, match="non-empty"):
                reg.join("", a)
            with pytest.raises(trouper.ConfigurationError, match="at most 255"):
                reg.join("x" * 256, a)


async def test_class_attribute_joins_at_start_and_leaves_at_stop() -> None:
    with trio.fail_after(10):
        async with trouper.open_node("solo") as node:
            m1 = await node.spawn(Member)
            m2 = await node.spawn(Member, name="m2")
            assert node.registry.members("workers") == [m1, m2]
            await node.stop(m1)
            assert node.registry.members("workers") == [m2]
            with pytest.raises(trouper.ConfigurationError, match=r"BadGroup\.__trouper_group__"):
                await node.spawn(BadGroup)
            assert node.registry.groups() == ["workers"]


async def test_a_member_joins_once_started_and_leaves_as_soon_as_it_stops() -> None:
    with trio.fail_after(10):
        async with trouper.open_node("solo") as node:
            started, stopping, release = trio.Event(), trio.Event(), trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.spawn, Slow, started, stopping, release)
                await trio.testing.wait_all_tasks_blocked()
                assert node.registry.members("slow") == []  # on_start is still running
                started.set()
                member = (await node.registry.wait_for_members("slow", 1, timeout=5))[0]
                nursery.start_soon(node.stop, member)
                await stopping.wait()
                assert node.registry.members("slow") == []  # on_stop is still running
                release.set()


async def test_wait_for_members_wakes_on_join_and_times_out() -> None:
    with trio.fail_after(10):
        async with trouper.open_node("solo") as node:
            got: list[list[trouper.ActorRef]] = []

            async def waiter() -> None:
                got.append(await node.registry.wait_for_members("workers", 2, timeout=5))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                first = await node.spawn(Member)
                await trio.testing.wait_all_tasks_blocked()
                assert got == []
                second = await node.spawn(Member)
            assert got == [[first, second]]
            with pytest.raises(trouper.ActorNotFound, match="'nobody' has 0 members"):
                await node.registry.wait_for_members("nobody", 1, timeout=0.01)
            with pytest.raises(trouper.ConfigurationError):
                await node.registry.wait_for_members("workers", 0)


# ------------------------------------------------------------ two and three nodes


async def test_members_across_two_nodes_local_first() -> None:
    with trio.fail_after(30):
        async with cluster("a", "b") as (a, b):
            a1 = await a.spawn(Member)
            b1 = await b.spawn(Member)
            b2 = await b.spawn(Member)
            assert await a.registry.wait_for_members("workers", 3, timeout=5) == [a1, b1, b2]
            assert await b.registry.wait_for_members("workers", 3, timeout=5) == [b1, b2, a1]
            assert await b1.ask(WhereAreYou()) == "b"
            # A ref from the registry is a working ref.
            assert [await r.ask(WhereAreYou()) for r in a.registry.members("workers")] == [
                "a",
                "b",
                "b",
            ]
            # Leave, explicitly and by stopping, reaches the other node.
            b.registry.leave("workers", b1)
            await eventually(lambda: a.registry.members("workers") == [a1, b2])
            await b.stop(b2)
            await eventually(lambda: a.registry.members("workers") == [a1])
            b.registry.join("extra", b1)
            await eventually(lambda: a.registry.groups() == ["extra", "workers"])
            assert a.registry.members("extra") == [b1]


async def test_a_node_that_connects_later_gets_a_snapshot_and_shutdown_removes_members() -> None:
    with trio.fail_after(30):
        async with trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a:
            a1 = await a.spawn(Member)
            async with trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b:
                refs = [await b.spawn(Member) for _ in range(3)]
                b.registry.join("other", refs[0])
                # b's members were there before the link came up.
                assert await b.registry.wait_for_members("workers", 4, timeout=5) == [*refs, a1]
                assert await a.registry.wait_for_members("workers", 4, timeout=5) == [a1, *refs]
                assert a.registry.members("other") == [refs[0]]
            # b shut down: its members left with it.
            await eventually(lambda: a.registry.members("workers") == [a1])
            assert a.registry.groups() == ["workers"]


async def test_members_survive_broken_connections_and_updates_flow_after() -> None:
    with trio.fail_after(30):
        async with cluster("a", "b") as (a, b):
            refs = [await b.spawn(Member) for _ in range(3)]
            assert await a.registry.wait_for_members("workers", 3, timeout=5) == refs
            peer = remoting(a).peers["b"]
            for _ in range(2):
                old = peer.conn
                assert old is not None
                old.close_soon("a test breaks the connection")
                await eventually(lambda: peer.conn is not None and peer.conn is not old)  # noqa: B023
                assert a.registry.members("workers") == refs
            await b.stop(refs[1])
            await eventually(lambda: a.registry.members("workers") == [refs[0], refs[2]])
            assert remoting(a).statistics()["b"].group_members == 2


async def test_three_nodes_list_local_members_first_then_by_node_id() -> None:
    with trio.fail_after(30):
        async with cluster("b", "c", "a") as (b, c, a):
            c1 = await c.spawn(Member)
            a1 = await a.spawn(Member)
            b1 = await b.spawn(Member)
            for node in (a, b, c):
                await node.registry.wait_for_members("workers", 3, timeout=5)
            assert a.registry.members("workers") == [a1, b1, c1]
            assert b.registry.members("workers") == [b1, a1, c1]
            assert c.registry.members("workers") == [c1, a1, b1]


async def test_a_node_shut_down_in_a_three_node_cluster_leaves_everywhere() -> None:
    with trio.fail_after(30):
        async with cluster("a", "b") as (a, b):
            a1, b1 = await a.spawn(Member), await b.spawn(Member)
            async with trouper.open_node(
                "c", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE
            ) as c:
                c1 = await c.spawn(Member)
                await a.registry.wait_for_members("workers", 3, timeout=5)
                await b.registry.wait_for_members("workers", 3, timeout=5)
                assert b.registry.members("workers") == [b1, a1, c1]
            await eventually(lambda: a.registry.members("workers") == [a1, b1])
            await eventually(lambda: b.registry.members("workers") == [b1, a1])


# ------------------------------------------------------------ bounds


async def test_group_memberships_a_peer_announces_are_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past ``max_group_members`` a peer's memberships are ignored (logged),
    as are group names over ``max_group_name`` and refs to other nodes'
    actors; another peer's members are unaffected."""
    assert default("max_group_members") == 100_000
    assert default("max_group_name") == 255
    caplog.set_level(logging.WARNING, "trouper.remote")
    with trio.fail_after(30):
        async with cluster("srv", "other", max_group_members=3, max_group_name=20) as (srv, other):
            probe = await srv.spawn(Big)
            theirs = [await other.spawn(Member) for _ in range(3)]
            raw = await RawPeer.connect(srv)
            mine = [WireRef("raw", f"/user/w{i}", i + 1) for i in range(5)]
            await raw.send(
                GroupUpdate("raw", {"workers": mine}, {}),
                GroupUpdate("raw", {"y" * 21: [mine[0]]}, {}),  # name too long
                GroupUpdate("raw", {"forged": [WireRef("other", "/user/x", 1)]}, {}),
                GroupUpdate("other", {"hijack": [WireRef("other", "/user/x", 1)]}, {}),
            )
            await raw.roundtrip(probe)
            found = await srv.registry.wait_for_members("workers", 6, timeout=5)
            assert found[:3] == theirs  # "other" < "raw"
            assert [(r.node_id, r.path) for r in found[3:]] == [
                ("raw", "/user/w0"),
                ("raw", "/user/w1"),
                ("raw", "/user/w2"),
            ]
            assert srv.registry.groups() == ["workers"]
            stats = remoting(srv).statistics()
            assert (stats["raw"].group_members, stats["other"].group_members) == (3, 3)
            for what in ("max_group_members", "max_group_name", "of other nodes' actors"):
                assert what in caplog.text
            # Leaving makes room; the other peer's members count for it, not raw.
            await raw.send(GroupUpdate("raw", {"workers": [mine[3]]}, {"workers": [mine[0]]}))
            await raw.roundtrip(probe)
            raw_members = [r for r in srv.registry.members("workers") if r.node_id == "raw"]
            assert [r.path for r in raw_members] == ["/user/w1", "/user/w2", "/user/w3"]
            assert [r for r in srv.registry.members("workers") if r.node_id == "other"] == theirs
            # A snapshot replaces what raw announced.
            await raw.send(GroupUpdate("raw", {"solo": [mine[4]]}, {}, snapshot=True))
            await raw.roundtrip(probe)
            assert srv.registry.members("workers") == theirs
            assert [r.path for r in srv.registry.members("solo")] == ["/user/w4"]
            # The link stayed up throughout.
            assert await theirs[0].ask(WhereAreYou()) == "other"


# ------------------------------------------------------------ a killed process


async def test_members_of_a_killed_node_process_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), existing) if p))
    with trio.fail_after(40):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST
        ) as parent:
            mine = await parent.spawn(Member)
            handle = await parent.spawn_node(name="victim", allow_spawn=["services_actors:Member"])
            theirs = [await parent.spawn(Member, on="victim") for _ in range(2)]
            assert await parent.registry.wait_for_members("workers", 3, timeout=10) == [
                mine,
                *theirs,
            ]
            assert await theirs[1].ask(WhereAreYou()) == "victim"
            handle.kill()
            await eventually(lambda: parent.registry.members("workers") == [mine])


async def test_a_large_snapshot_goes_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot bigger than a piece is one snapshot envelope then patches:
    the other node sees every member, in order, and nothing stale."""
    import trouper.remote._groups as groups_module

    monkeypatch.setattr(groups_module, "SNAPSHOT_CHUNK", 2)
    with trio.fail_after(30):
        async with trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a:
            refs = [await a.spawn(Member) for _ in range(5)]
            a.registry.join("other", refs[0])
            assert len(groups_module.GroupTable.snapshot(remoting(a).groups)) == 3
            async with trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b:
                assert await b.registry.wait_for_members("workers", 5, timeout=5) == refs
                await eventually(lambda: b.registry.members("other") == [refs[0]])


class GroupsMachine(RuleBasedStateMachine):
    """``Groups`` (this node's memberships) against a plain model."""

    refs = [trouper.ActorRef("n", f"/user/a{i}", i) for i in range(4)]

    def __init__(self) -> None:
        super().__init__()
        self.groups = Groups()
        self.model: dict[str, list[trouper.ActorRef]] = {}
        self.told: list[tuple[str, trouper.ActorRef, bool]] = []
        self.groups.listener = lambda g, r, j: self.told.append((g, r, j))

    @rule(group=st.sampled_from("abc"), i=st.integers(0, 3))
    def join(self, group: str, i: int) -> None:
        ref = self.refs[i]
        self.groups.join(group, ref)
        if ref not in self.model.setdefault(group, []):
            self.model[group].append(ref)
            assert self.told.pop() == (group, ref, True)
        assert not self.told

    @rule(group=st.sampled_from("abc"), i=st.integers(0, 3))
    def leave(self, group: str, i: int) -> None:
        ref = self.refs[i]
        self.groups.leave(group, ref)
        if ref in self.model.get(group, []):
            self.model[group].remove(ref)
            assert self.told.pop() == (group, ref, False)
        assert not self.told

    @rule(i=st.integers(0, 3))
    def stop(self, i: int) -> None:
        ref = self.refs[i]
        self.groups.leave_all(ref)
        left = {(g, ref, False) for g, refs in self.model.items() if ref in refs}
        for refs in self.model.values():
            if ref in refs:
                refs.remove(ref)
        assert set(self.told) == left and len(self.told) == len(left)
        self.told.clear()

    @invariant()
    def agrees(self) -> None:
        model = {g: refs for g, refs in self.model.items() if refs}
        assert dict(self.groups.items()) == model
        assert sorted(self.groups.names()) == sorted(model)
        assert len(self.groups) == sum(len(refs) for refs in model.values())
        for ref in self.refs:
            assert sorted(self.groups.groups_of(ref)) == sorted(
                g for g, refs in model.items() if ref in refs
            )


GroupsMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestGroups = GroupsMachine.TestCase
