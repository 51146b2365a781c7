"""Actors and messages the remote cases spawn on another node.

Imported by both node processes (a child node spawns them through
``allow_spawn=["benchmarks.cases.remote_actors:*"]``). Every message type crossing the wire is
a handler's annotated parameter type, so it registers with trouper's codec automatically.
"""

from __future__ import annotations

import msgspec
import trio

import trouper
from benchmarks.cases._actors import Counter
from benchmarks.cases._messages import Ping


class HowMany(msgspec.Struct):
    """Ask a ``Sink`` how many Pings it has handled."""


class Prepare(msgspec.Struct):
    """Spawn ``pairs`` local counters, each expecting ``per_pair`` Pings."""

    pairs: int
    per_pair: int


class Go(msgspec.Struct):
    """Run every prepared sender against its counter; answer once all have counted."""


class Echo(trouper.Actor):
    """Answers each Ping with itself."""

    @trouper.handler
    async def ping(self, msg: Ping) -> Ping:
        return msg


class Sink(trouper.Actor):
    """Counts Pings; ``HowMany`` answers the count."""

    def __init__(self) -> None:
        self.count = 0

    @trouper.handler
    async def ping(self, msg: Ping) -> None:
        self.count += 1

    @trouper.handler
    async def how_many(self, msg: HowMany) -> int:
        return self.count


class LoadDriver(trouper.Actor):
    """Local tell load inside one node: ``pairs`` sender tasks, each feeding its own Counter."""

    def __init__(self) -> None:
        self.counters: list[tuple[trouper.ActorRef, trio.Event]] = []
        self.per_pair = 0

    @trouper.handler
    async def prepare(self, msg: Prepare) -> int:
        self.per_pair = msg.per_pair
        for _ in range(msg.pairs):
            done = trio.Event()
            self.counters.append((await self.ctx.spawn(Counter, msg.per_pair, done), done))
        return len(self.counters)

    @trouper.handler
    async def go(self, msg: Go) -> int:
        async with trio.open_nursery() as nursery:
            for ref, _ in self.counters:
                nursery.start_soon(self._send, ref)
        for _, done in self.counters:
            await done.wait()
        return len(self.counters) * self.per_pair

    async def _send(self, ref: trouper.ActorRef) -> None:
        for i in range(self.per_pair):
            await ref.tell(Ping(i))
