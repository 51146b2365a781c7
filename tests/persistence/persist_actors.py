"""Persistent actors and messages shared by the persistence tests and the node
processes they start (which import this module by name, ``persist_actors``,
through ``PYTHONPATH``, so both sides agree on the wire names)."""

from __future__ import annotations

import msgspec
import trio

import trouper

#: What the tests give ``allow_spawn``.
ALLOW = ["persist_actors:Counter"]


# ------------------------------------------------------------ events and state


class Added(msgspec.Struct, frozen=True):
    amount: int
    note: str = ""


class Reset(msgspec.Struct, frozen=True):
    pass


class Totals(msgspec.Struct, frozen=True):
    """A Counter's snapshot."""

    total: int
    count: int


class Unencodable(msgspec.Struct, frozen=True):
    """An event msgspec cannot encode (its field holds a function)."""

    what: object


# ------------------------------------------------------------ messages


class Add(msgspec.Struct, frozen=True):
    amount: int
    note: str = ""


class AddMany(msgspec.Struct, frozen=True):
    n: int
    amount: int = 1
    note: str = ""


class Get(msgspec.Struct, frozen=True):
    pass


class State(msgspec.Struct, frozen=True):
    total: int
    count: int
    sequence: int
    restored_from: int  # the sequence number of the snapshot recovery started from (0: none)
    replayed: int  # events applied during recovery


class Crash(msgspec.Struct, frozen=True):
    pass


class PersistBad(msgspec.Struct, frozen=True):
    pass


# ------------------------------------------------------------ the actor


class Counter(trouper.PersistentActor):
    """Sums what it is told to add; every change is an event."""

    def __init__(self, pid: str, url: str, snapshot_every: int | None = None) -> None:
        self.persistence_id = pid
        self.store_url = url
        self.snapshot_every = snapshot_every
        self.total = 0
        self.count = 0
        self.restored_from = 0
        self.replayed = 0
        self.started = False

    async def on_start(self) -> None:
        # Runs after recovery: the state is already there.
        self.started = True

    def apply(self, event: Added | Reset) -> None:
        if self.recovering:
            self.replayed += 1
        if isinstance(event, Added):
            self.total += event.amount
            self.count += 1
        else:
            self.total = 0

    def snapshot(self) -> Totals:
        return Totals(self.total, self.count)

    def restore(self, state: Totals) -> None:
        self.total, self.count = state.total, state.count
        self.restored_from = state.count  # every event adds one: count == its sequence

    @trouper.handler
    async def add(self, msg: Add) -> int:
        assert self.started
        return await self.persist(Added(msg.amount, msg.note))

    @trouper.handler
    async def add_many(self, msg: AddMany) -> int:
        ids = await self.persist_all(Added(msg.amount, msg.note) for _ in range(msg.n))
        return ids[-1] if ids else self.last_sequence_nr

    @trouper.handler
    async def get(self, msg: Get) -> State:
        sequence = self.last_sequence_nr
        return State(self.total, self.count, sequence, self.restored_from, self.replayed)

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash on request")

    @trouper.handler
    async def persist_bad(self, msg: PersistBad) -> None:
        await self.persist(Unencodable(lambda: None))


async def wait_until(predicate: object, what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` (sync or async) until true; fail after ``timeout``."""
    with trio.fail_after(timeout):
        while True:
            result = predicate()  # type: ignore[operator]
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await trio.sleep(0.01)
