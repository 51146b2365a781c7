"""Actors and messages shared by the event tests and the node processes they
start (imported by name, ``events_actors``, through ``PYTHONPATH``, so both
sides register ``Tick`` under the same wire name)."""

from __future__ import annotations

import msgspec

import trouper

ALLOW = ["events_actors:Sink"]


@trouper.message
class Tick(msgspec.Struct, frozen=True):
    n: int


class Sink(trouper.Actor):
    """Subscribes to ``topic`` on start; answers ``"count"`` with the ticks it got."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.ticks: list[int] = []

    async def on_start(self) -> None:
        self.ctx.subscribe(self.topic)

    @trouper.handler
    async def tick(self, msg: Tick) -> None:
        self.ticks.append(msg.n)

    @trouper.handler
    async def report(self, msg: str) -> list[int]:
        return self.ticks
