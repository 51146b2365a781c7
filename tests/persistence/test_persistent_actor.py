"""PersistentActor on one node: persist/apply/recover, snapshots, crashes, bad input.

Every test runs over every store backend (``store_url``)."""

from __future__ import annotations

import msgspec
import pytest
import trio
from persist_actors import Add, Added, AddMany, Counter, Crash, Get, PersistBad, State, wait_until

import trouper
import trouper.stores
from trouper.stores import open_store


async def state_of(ref: trouper.ActorRef) -> State:
    result = await ref.ask(Get())
    assert isinstance(result, State)
    return result


async def test_persist_applies_and_a_new_instance_recovers(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter, "acct-1", store_url)
            assert [await ref.ask(Add(n)) for n in (5, 7, 11)] == [1, 2, 3]
            assert await state_of(ref) == State(23, 3, 3, 0, 0)
            await node.stop(ref)
            again = await node.spawn(Counter, "acct-1", store_url)
            assert await state_of(again) == State(23, 3, 3, 0, 3)  # replayed, not re-stored
            assert await again.ask(Add(1)) == 4
            other = await node.spawn(Counter, "acct-2", store_url)  # ids are independent
            assert await state_of(other) == State(0, 0, 0, 0, 0)
        # The events are in the store, in order, readable by anyone.
        async with open_store(store_url) as store:
            records = await store.read("trouper.persist/acct-1/events")
            assert [rid for rid, _ in records] == [1, 2, 3, 4]


async def test_persist_all_and_recovery_across_many_batches(store_url: str) -> None:
    class Small(Counter):
        recovery_batch = 7  # 100 events: 15 batches, the last one short

    with trio.fail_after(30):
        async with trouper.open_node() as node:
            ref = await node.spawn(Small, "many", store_url)
            assert await ref.ask(AddMany(100, 2)) == 100
            await node.stop(ref)
            again = await node.spawn(Small, "many", store_url)
            assert await state_of(again) == State(200, 100, 100, 0, 100)
            await node.stop(again)
            # An exact multiple of the batch size ends the same way.
            exact = await node.spawn(Small, "exact", store_url)
            await exact.ask(AddMany(14))
            await node.stop(exact)
            assert await state_of(await node.spawn(Small, "exact", store_url)) == State(
                14, 14, 14, 0, 14
            )


async def test_snapshot_then_only_the_events_after_it(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter, "snap", store_url, 10)
            await ref.ask(AddMany(25, 3))
            await node.stop(ref)
            again = await node.spawn(Counter, "snap", store_url, 10)
            # The snapshot at 20, then events 21..25.
            assert await state_of(again) == State(75, 25, 25, 20, 5)
            await again.ask(AddMany(5))  # 30: a new snapshot
            await node.stop(again)
            third = await node.spawn(Counter, "snap", store_url, 10)
            assert await state_of(third) == State(80, 30, 30, 30, 0)
        async with open_store(store_url) as store:  # old snapshots are trimmed
            assert len(await store.tail("trouper.persist/snap/snapshots", 10)) == 2


async def test_a_crash_is_recovered_by_the_supervisor_restart(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter, "crashy", store_url)
            await ref.ask(AddMany(4, 10))
            with pytest.raises(RuntimeError, match="crash on request"):
                await ref.ask(Crash())
            # The same ref, a fresh instance: its state came back from the store.
            assert await state_of(ref) == State(40, 4, 4, 0, 4)
            assert await ref.ask(Add(2)) == 5


async def test_a_failing_persist_crashes_writes_nothing_and_loses_nothing(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter, "failing", store_url)
            await ref.ask(AddMany(3))
            with pytest.raises(trouper.ConfigurationError, match="cannot encode"):
                await ref.ask(PersistBad())
            assert await state_of(ref) == State(3, 3, 3, 0, 3)  # restarted, recovered
            assert await ref.ask(Add(1)) == 4  # no id was used by the failed event


async def test_events_register_from_the_apply_annotation() -> None:
    from trouper.protocols import default_registry

    assert default_registry.name_of(Added) == "persist_actors:Added"


async def test_bad_settings_are_clear_errors(store_url: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match="snapshot_every"):

        class Bad(trouper.PersistentActor):
            snapshot_every = 0

    with pytest.raises(trouper.ConfigurationError, match="recovery_batch"):

        class Bad2(trouper.PersistentActor):
            recovery_batch = True  # type: ignore[assignment]

    class NoId(trouper.PersistentActor):
        store_url = "memory://"

        def apply(self, event: Added) -> None:
            pass

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            with pytest.raises(trouper.SpawnRefused, match="persistence_id"):
                await node.spawn(NoId)
            with pytest.raises(trouper.SpawnRefused, match="persistence_id"):
                await node.spawn(Counter, "", store_url)
            with pytest.raises(trouper.SpawnRefused, match="store_url"):
                await node.spawn(Counter, "x", b"sqlite:///x.db")  # not a str
            # The node and the other actors are unaffected.
            ok = await node.spawn(Counter, "fine", store_url)
            assert await ok.ask(Add(1)) == 1


async def test_an_unreadable_record_names_itself(store_url: str) -> None:
    class Unknown(msgspec.Struct):
        x: int

    with trio.fail_after(10):
        async with open_store(store_url) as store:
            record = msgspec.msgpack.encode(["nowhere:Unknown", Unknown(1)])
            await store.append("trouper.persist/broken/events", record)
        async with trouper.open_node() as node:
            with pytest.raises(trouper.SpawnRefused, match=r"broken event 1.*nowhere:Unknown"):
                await node.spawn(Counter, "broken", store_url)


class Background(msgspec.Struct, frozen=True):
    tasks: int


class Noted(msgspec.Struct, frozen=True):
    text: str


class Notes(msgspec.Struct, frozen=True):
    pass


class Journal(trouper.PersistentActor):
    """Persists from several background tasks at once; order matters to it."""

    def __init__(self, url: str) -> None:
        self.persistence_id = "journal"
        self.store_url = url
        self.notes: list[str] = []

    def apply(self, event: Noted) -> None:
        self.notes.append(event.text)

    @trouper.handler
    async def background(self, msg: Background) -> None:
        async def write(i: int) -> None:
            for j in range(5):
                await self.persist(Noted(f"{i}.{j}"))

        for i in range(msg.tasks):
            self.ctx.start_soon(write, i)

    @trouper.handler
    async def get_notes(self, msg: Notes) -> list[str]:
        return self.notes


async def test_persists_from_several_tasks_apply_in_log_order(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            journal = await node.spawn(Journal, store_url)
            await journal.ask(Background(6))

            async def all_written() -> bool:
                return len(await journal.ask(Notes())) == 30

            await wait_until(all_written, "30 notes")
            live = await journal.ask(Notes())
            await node.stop(journal)
            recovered = await (await node.spawn(Journal, store_url)).ask(Notes())
            assert recovered == live and sorted(live) == sorted(
                f"{i}.{j}" for i in range(6) for j in range(5)
            )


class CancelledWrite(msgspec.Struct, frozen=True):
    pass


class Cancellable(Counter):
    @trouper.handler
    async def cancelled_write(self, msg: CancelledWrite) -> None:
        with trio.CancelScope() as scope:
            scope.cancel()  # the caller gives up on the write
            await self.persist(Added(1000))
        assert self.total < 1000  # not applied, whether or not it was stored
        await self.persist(Added(1))  # refused: this instance's state is uncertain


async def test_a_cancelled_persist_forces_a_recovery_before_the_next(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            ref = await node.spawn(Cancellable, "cancelled", store_url)
            await ref.ask(Add(1))
            with pytest.raises(trouper.stores.StoreError, match="must restart"):
                await ref.ask(CancelledWrite())
            state = await state_of(ref)  # restarted: the state is what the log holds
            async with open_store(store_url) as store:
                records = await store.read("trouper.persist/cancelled/events")
            assert state.sequence == len(records) and state.count == len(records)
            assert await ref.ask(Add(1)) == state.sequence + 1


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("snapshot_every", 0),
        ("snapshot_every", 2.5),
        ("recovery_batch", True),
        ("recovery_batch", 0),
        ("keep_snapshots", -1),
        ("store_url", b"sqlite:///x.db"),
    ],
)
def test_bad_class_settings_name_themselves(setting: str, value: object) -> None:
    with pytest.raises(trouper.ConfigurationError, match=setting):
        type("Bad", (trouper.PersistentActor,), {setting: value})


async def test_snapshot_every_without_the_hooks_is_refused(store_url: str) -> None:
    class NoHooks(trouper.PersistentActor):
        persistence_id = "no-hooks"
        snapshot_every = 10

        def apply(self, event: Added) -> None:
            pass

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            with pytest.raises(trouper.SpawnRefused, match=r"snapshot\(\)"):
                await node.spawn(NoHooks)


class ReadBack(msgspec.Struct, frozen=True):
    after_id: int
    limit: int


class Reader(Counter):
    @trouper.handler
    async def read_back(self, msg: ReadBack) -> list[tuple[int, Added]]:
        return await self.read_events(msg.after_id, msg.limit)


async def test_read_events_reads_the_actors_own_log(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            ref = await node.spawn(Reader, "read-back", store_url)
            for n in (5, 7, 11):
                await ref.ask(Add(n))
            assert await ref.ask(ReadBack(1, 10)) == [(2, Added(7)), (3, Added(11))]
            assert await ref.ask(ReadBack(0, 1)) == [(1, Added(5))]
            assert await ref.ask(ReadBack(3, 10)) == []
