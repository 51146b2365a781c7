"""What Erlang/OTP users expect of a supervisor (issue 10, item 9).

``Supervisor`` keeps its child specs and answers ``which_children``,
``count_children``, ``terminate_child``, ``restart_child``, ``delete_child``
and ``start_child``; ``shutdown="brutal_kill"`` kills without waiting;
``node.stop`` and ``node.kill`` work on a remote actor's ref; ``PoisonPill``
stops an actor after the messages queued before it.
"""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper.remote import Remoting
from trouper.runtime import cell_of
from trouper.supervisors import ChildCounts, ChildInfo

Sup = trouper.Supervisor


class Worker(trouper.Actor):
    def __init__(self, log: list[str] | None = None) -> None:
        self.log = log if log is not None else []
        self.seen: list[int] = []

    @trouper.handler
    async def take(self, msg: int) -> int:
        self.seen.append(msg)
        return len(self.seen)

    @trouper.handler
    async def nap(self, msg: float) -> None:
        await trio.sleep(msg)

    async def on_stop(self) -> None:
        self.log.append(f"stop {self.ctx.self_ref.path}")


class Stubborn(trouper.Actor):
    """Takes an hour to stop (unless killed)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_stop(self) -> None:
        self.log.append("stubborn on_stop began")
        await trio.sleep(3600)


async def test_which_and_count_children() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            sup = await node.spawn(
                Sup,
                children=[
                    trouper.child(Worker, name="db"),
                    trouper.child(Worker),
                    trouper.child(Worker, restart="temporary"),
                    trouper.child(Sup, children=[]),
                ],
            )
            children = await Sup.which_children(sup)
            assert [c.id for c in children] == ["db", "Worker", "Worker-2", "Supervisor"]
            assert all(isinstance(c, ChildInfo) and c.ref is not None for c in children)
            assert [c.restart for c in children] == [
                "permanent",
                "permanent",
                "temporary",
                "permanent",
            ]
            assert [c.supervisor for c in children] == [False, False, False, True]
            assert await Sup.count_children(sup) == ChildCounts(4, 4, 1, 3)


async def test_terminate_restart_delete_and_start_child() -> None:
    log: list[str] = []
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            sup = await node.spawn(Sup, children=[trouper.child(Worker, log, name="w")])
            first = (await Sup.which_children(sup))[0].ref
            assert await first.ask(1) == 1
            await Sup.terminate_child(sup, "w")
            assert log == ["stop /user/$1/w".replace("$1", sup.path.rsplit("/", 1)[1])]
            info = (await Sup.which_children(sup))[0]
            assert info.id == "w" and info.ref is None  # the spec is kept
            assert await Sup.count_children(sup) == ChildCounts(1, 0, 0, 1)
            with pytest.raises(trouper.ActorDead):
                await first.ask(2)
            second = await Sup.restart_child(sup, "w")
            assert second != first and await second.ask(7) == 1  # a fresh instance
            with pytest.raises(trouper.ConfigurationError, match="running"):
                await Sup.restart_child(sup, "w")
            with pytest.raises(trouper.ConfigurationError, match="running"):
                await Sup.delete_child(sup, "w")
            await Sup.terminate_child(sup, "w")
            await Sup.delete_child(sup, "w")
            assert await Sup.which_children(sup) == []
            with pytest.raises(trouper.ConfigurationError, match="no child 'w'"):
                await Sup.restart_child(sup, "w")
            third = await Sup.start_child(sup, trouper.child(Worker, log, name="w"))
            assert await third.ask(5) == 1
            assert [c.id for c in await Sup.which_children(sup)] == ["w"]


async def test_a_temporary_child_that_ends_is_forgotten_a_permanent_one_restarted() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            sup = await node.spawn(
                Sup,
                children=[
                    trouper.child(Worker, name="temp", restart="temporary"),
                    trouper.child(Worker, name="perm"),
                ],
            )
            temp, perm = (c.ref for c in await Sup.which_children(sup))
            await temp.tell(trouper.PoisonPill())
            await perm.ask(1)
            cell = cell_of(temp)
            assert cell is not None
            await cell.wait_dead()
            # (its Terminated reached the supervisor's mailbox before this ask)
            assert [c.id for c in await Sup.which_children(sup)] == ["perm"]


async def test_supervisor_calls_work_across_nodes() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie="c") as a,
            trouper.open_node("b", seeds=a.addresses, cookie="c") as b,
        ):
            await b.spawn(Sup, children=[trouper.child(Worker, name="w")], name="sup")
            sup = await a.lookup("sup", timeout=5)
            children = await Sup.which_children(sup)
            assert [c.id for c in children] == ["w"] and children[0].ref.node_id == "b"
            await Sup.terminate_child(sup, "w")
            assert await Sup.count_children(sup) == ChildCounts(1, 0, 0, 1)
            ref = await Sup.restart_child(sup, "w")
            assert await ref.ask(3) == 1


async def test_brutal_kill_kills_without_waiting(autojump_clock: trio.testing.MockClock) -> None:
    log: list[str] = []
    async with trouper.open_node() as node:
        patient = await node.spawn(Stubborn, log, shutdown=2.0)
        brutal = await node.spawn(Stubborn, log, shutdown="brutal_kill")
        start = trio.current_time()
        await node.stop(brutal)
        assert trio.current_time() - start == 0  # not even on_stop ran
        assert log == []
        await node.stop(patient)
        assert trio.current_time() - start == pytest.approx(2.0)  # waited, then killed
        assert log == ["stubborn on_stop began"]


async def test_brutal_kill_child_spec_under_a_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with trouper.open_node() as node:
        sup = await node.spawn(
            Sup, children=[trouper.child(Stubborn, log, name="s", shutdown="brutal_kill")]
        )
        start = trio.current_time()
        await Sup.terminate_child(sup, "s")
        assert trio.current_time() == start and log == []


class Count(msgspec.Struct, frozen=True):
    pass


async def test_node_stop_and_kill_work_on_remote_refs() -> None:
    log: list[str] = []
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie="c") as a,
            trouper.open_node("b", seeds=a.addresses, cookie="c") as b,
        ):
            await b.spawn(Worker, log, name="gentle")
            await b.spawn(Worker, log, name="brutal")
            gentle = await a.lookup("gentle", timeout=5)
            brutal = await a.lookup("brutal", timeout=5)
            await a.stop(gentle)
            assert log == ["stop /user/gentle"]  # on_stop ran, before stop returned
            await a.kill(brutal)
            assert log == ["stop /user/gentle"]  # killed: no on_stop
            assert "gentle" not in b.registry and "brutal" not in b.registry
            with pytest.raises(trouper.ActorDead):
                await gentle.ask(1)
            await a.stop(gentle)  # stopping what is gone is a no-op, as locally
            # Only actors under /user can be stopped from another node.
            cluster = b.kernel.cell_at("/system/remote/cluster")
            assert cluster is not None
            remoting = a.remote
            assert isinstance(remoting, Remoting)
            ref = remoting.resolve("b", cluster.ref.path, cluster.ref.uid)
            with pytest.raises(trouper.ConfigurationError, match="only actors under /user"):
                await a.stop(ref)
            assert not cluster.dead


async def test_poison_pill_stops_after_what_is_queued() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Worker, restart="permanent", mailbox_size=100)
            actor = cell_of(ref).instance  # type: ignore[union-attr]
            assert isinstance(actor, Worker)
            letters: list[trouper.DeadLetter] = []
            async with node.dead_letters.subscribe() as dead:
                await ref.tell(0.01)  # a nap, so what follows queues up
                for i in range(5):
                    await ref.tell(i)
                await ref.tell(trouper.PoisonPill())
                await ref.tell(99)
                with trio.fail_after(5):
                    cell = cell_of(ref)
                    assert cell is not None
                    await cell.wait_dead()
                letters.append(await dead.receive())
            assert actor.seen == [0, 1, 2, 3, 4]  # the ones before the pill, not after
            assert letters[0].message == 99
            # stopped for good, even though it is "permanent"
            with pytest.raises(trouper.ActorDead):
                await ref.ask(1)


async def test_poison_pill_across_nodes() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie="c") as a,
            trouper.open_node("b", seeds=a.addresses, cookie="c") as b,
        ):
            local = await b.spawn(Worker, name="w")
            remote = await a.lookup("w", timeout=5)
            for i in range(3):
                await remote.tell(i)
            await remote.tell(trouper.PoisonPill())
            cell = cell_of(local)
            assert cell is not None
            await cell.wait_dead()
            with pytest.raises(trouper.ActorDead):
                await remote.ask(1)


async def test_ctx_stop_stays_immediate() -> None:
    class Quitter(trouper.Actor):
        def __init__(self) -> None:
            self.seen: list[int] = []

        @trouper.handler
        async def take(self, msg: int) -> None:
            self.seen.append(msg)
            if msg == 0:
                self.ctx.stop()

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Quitter, mailbox_size=10)
            actor = cell_of(ref).instance  # type: ignore[union-attr]
            assert isinstance(actor, Quitter)
            for i in range(3):
                ref.tell_nowait(i)
            cell = cell_of(ref)
            assert cell is not None
            await cell.wait_dead()
            assert actor.seen == [0]
