"""The persistent actor the persist_<backend> benchmarks drive."""

from __future__ import annotations

import msgspec

import trouper
from benchmarks.cases._timing import clock


class Noted(msgspec.Struct, frozen=True):
    """The event: a counter step with a payload of fixed size."""

    n: int
    note: str


class Persist(msgspec.Struct, frozen=True):
    """Persist ``count`` events; answers the seconds it took."""

    count: int


class Writer(trouper.PersistentActor):
    def __init__(self, pid: str, url: str, note: str) -> None:
        self.persistence_id = pid
        self.store_url = url
        self.note = note
        self.total = 0

    def apply(self, event: Noted) -> None:
        self.total += 1

    @trouper.handler
    async def persist_many(self, msg: Persist) -> float:
        start = clock()
        for i in range(msg.count):
            await self.persist(Noted(i, self.note))
        return clock() - start


def record_of_the_same_size(note: str) -> bytes:
    """Raw bytes as long as a stored ``Noted`` event (type name and all)."""
    name = f"{Noted.__module__}:{Noted.__qualname__}"
    stored = msgspec.msgpack.encode([name, msgspec.msgpack.encode(Noted(1, note))])
    return b"r" * len(stored)
