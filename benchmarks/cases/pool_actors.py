"""The worker of the ``worker_pool_spike`` case (a module of its own, so that
its annotations resolve)."""

from __future__ import annotations

import msgspec
import trio

import trouper

WORK = 0.001  # seconds of "I/O" per message


class Job(msgspec.Struct):
    n: int


class Worker(trouper.Actor):
    @trouper.handler
    async def job(self, msg: Job) -> int:
        await trio.sleep(WORK)
        return msg.n
