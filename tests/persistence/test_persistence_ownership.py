"""A single writer per persistence_id: two nodes (two instances) racing for one id.

Both nodes share one store (a named memory:// dataset is shared within the
process; an sqlite file between connections). Every test runs over every
backend (``store_url``).
"""

from __future__ import annotations

import msgspec
import pytest
import trio
from persist_actors import Add, Added, Counter, Get, State, wait_until

import trouper
import trouper.stores
from trouper.runtime import cell_of
from trouper.stores import open_store


async def outcome(ref: trouper.ActorRef, amount: int) -> object:
    try:
        return await ref.ask(Add(amount))
    except trouper.StaleWriter as exc:
        return exc


async def test_two_nodes_racing_for_one_id_leave_exactly_one_writer(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node("a") as a, trouper.open_node("b") as b:
            refs: dict[str, trouper.ActorRef] = {}

            async def start(node: trouper.Node) -> None:
                refs[node.id] = await node.spawn(Counter, "race", store_url)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(start, a)
                nursery.start_soon(start, b)
            results = {}

            async def write(node_id: str) -> None:
                results[node_id] = await outcome(refs[node_id], 1 if node_id == "a" else 100)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(write, "a")
                nursery.start_soon(write, "b")
            won = [n for n, r in results.items() if not isinstance(r, BaseException)]
            lost = [n for n, r in results.items() if isinstance(r, trouper.StaleWriter)]
            assert len(won) == 1 and len(lost) == 1, results
            winner, loser = refs[won[0]], refs[lost[0]]
            assert results[won[0]] == 1
            # The loser wrote nothing: only the winner's event is in the log.
            async with open_store(store_url) as store:
                records = await store.read("trouper.persist/race/events")
                assert len(records) == 1
            # The loser stopped, and its supervisor's restart did not claim the
            # id back: the winner keeps writing.
            await wait_until(lambda: _is_dead(loser), "the stale writer stops")
            with pytest.raises(trouper.ActorDead):
                await loser.ask(Get(), timeout=2)
            assert await winner.ask(Add(5)) == 2
            state = await winner.ask(Get())
            assert isinstance(state, State) and state.sequence == 2


def _is_dead(ref: trouper.ActorRef) -> bool:
    cell = cell_of(ref)
    return cell is None or cell.dead


async def test_a_newer_instance_takes_over_and_the_older_one_stops(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node("a") as a, trouper.open_node("b") as b:
            old = await a.spawn(Counter, "takeover", store_url)
            assert await old.ask(Add(1)) == 1
            new = await b.spawn(Counter, "takeover", store_url)  # recovers 1 event
            assert await new.ask(Get()) == State(1, 1, 1, 0, 1)
            with pytest.raises(trouper.StaleWriter):
                await old.ask(Add(1000))
            assert await new.ask(Add(2)) == 2
            await wait_until(lambda: _is_dead(old), "the stale writer stops")
            async with open_store(store_url) as store:
                amounts = [r for _, r in await store.read("trouper.persist/takeover/events")]
                assert len(amounts) == 2 and all(b"1000" not in r for r in amounts)
            # The new owner's state survives its own restart on node a.
            await b.stop(new)
            back = await a.spawn(Counter, "takeover", store_url)
            assert await back.ask(Get()) == State(3, 2, 2, 0, 2)


async def test_a_permanent_stale_actor_never_takes_the_id_back(store_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node("a") as a, trouper.open_node("b") as b:
            old = await a.spawn(Counter, "permanent", store_url, restart="permanent")
            new = await b.spawn(Counter, "permanent", store_url)
            with pytest.raises(trouper.StaleWriter):
                await old.ask(Add(1))
            await wait_until(lambda: _is_dead(old), "the stale writer stops for good")
            for i in range(1, 4):
                assert await new.ask(Add(1)) == i
            fresh = await a.spawn(Counter, "other-id", store_url, restart="permanent")
            assert await fresh.ask(Add(1)) == 1  # node a still serves


class Quietly(msgspec.Struct, frozen=True):
    pass


class Swallower(Counter):
    """Catches StaleWriter and carries on, as a careless handler might."""

    @trouper.handler
    async def quietly(self, msg: Quietly) -> str:
        try:
            await self.persist(Added(1))
        except trouper.StaleWriter:
            return "swallowed"
        return "written"


async def test_a_stale_writer_that_swallows_the_error_still_stops_for_good(
    store_url: str,
) -> None:
    with trio.fail_after(30):
        async with trouper.open_node("a") as a, trouper.open_node("b") as b:
            old = await a.spawn(Swallower, "swallow", store_url, restart="permanent")
            new = await b.spawn(Swallower, "swallow", store_url)
            assert await old.ask(Quietly()) == "swallowed"
            # It stopped itself; its permanent restart refused to start.
            await wait_until(lambda: _is_dead(old), "the stale writer stops for good")
            assert [await new.ask(Quietly()) for _ in range(3)] == ["written"] * 3
            state = await new.ask(Get())
            assert isinstance(state, State) and state.sequence == 3


def test_the_default_decider_stops_a_stale_writer() -> None:
    strategy = trouper.OneForOne()
    assert strategy.decider(trouper.StaleWriter("x")) == "stop"
    assert strategy.decider(RuntimeError("x")) == "restart"
    assert strategy.decider(trouper.stores.StoreError("x")) == "restart"  # recoverable by a restart
