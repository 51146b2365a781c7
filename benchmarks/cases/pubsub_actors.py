"""Actors and messages of the ``publish_fanout_2_nodes`` case.

Imported by both node processes (a child node spawns ``Host`` through
``allow_spawn=["benchmarks.cases.pubsub_actors:*"]``). ``Tick`` is a handler's
annotated parameter type, so it registers with trouper's codec by itself.
"""

from __future__ import annotations

import msgspec
import trio

import trouper

TOPIC = "bench-ticks"


class Tick(msgspec.Struct, frozen=True, gc=False):
    n: int


class Prepare(msgspec.Struct):
    """Spawn ``subscribers`` children of the host, each subscribed to ``TOPIC``."""

    subscribers: int


class WaitFor(msgspec.Struct):
    """Answer once this process's subscribers have handled ``deliveries`` ticks."""

    deliveries: int


class _Gauge:
    """Deliveries in this process (one node per process), and who waits for a count."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.reached = trio.Event()


GAUGE = _Gauge()


class Subscriber(trouper.Actor):
    async def on_start(self) -> None:
        self.ctx.subscribe(TOPIC)

    @trouper.handler
    async def tick(self, msg: Tick) -> None:
        gauge = GAUGE
        gauge.count += 1
        if gauge.count == gauge.target:
            gauge.reached.set()


class Host(trouper.Actor):
    """Spawns the subscribers of its node and reports their deliveries."""

    @trouper.handler
    async def prepare(self, msg: Prepare) -> int:
        for _ in range(msg.subscribers):
            await self.ctx.spawn(Subscriber)
        return msg.subscribers

    @trouper.handler
    async def wait_for(self, msg: WaitFor) -> int:
        gauge = GAUGE
        if gauge.count < msg.deliveries:
            gauge.target = msg.deliveries
            gauge.reached = trio.Event()
            await gauge.reached.wait()
        return gauge.count
