"""Trouper actors used by the cases (imported only by the trouper side)."""

from __future__ import annotations

import trio

import trouper
from benchmarks.cases._messages import Ping


class Counter(trouper.Actor):
    """Counts Pings, sets ``done`` at ``target``, and answers each with its number."""

    def __init__(self, target: int, done: trio.Event) -> None:
        self.target = target
        self.done = done
        self.count = 0

    @trouper.handler
    async def ping(self, msg: Ping) -> int:
        self.count += 1
        if self.count == self.target:
            self.done.set()
        return msg.n


class Idle(trouper.Actor):
    """An actor with no handlers: what an idle actor costs."""
