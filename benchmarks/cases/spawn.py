"""spawn_rate and idle_actor_memory: trouper actors against raw trio tasks parked on an Event.

The trouper side keeps every ref it is given, as a program that spawns actors would; the
trio side's tasks stay parked on one Event until the measurement is over. Each side warms up
with one actor or task first, so one-off lazy initialisation is not charged per actor.
"""

from __future__ import annotations

import trio
import trio.testing

from benchmarks.cases._timing import clock, rate, rss_bytes

DEADLINE = 300.0


class _Parked:
    """n trio tasks that count themselves in, then wait on ``release``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.started = 0
        self.all_started = trio.Event()
        self.release = trio.Event()

    async def idle(self) -> None:
        self.started += 1
        if self.started == self.n:
            self.all_started.set()
        await self.release.wait()


def trouper_spawn_rate(n: int) -> float:
    import trouper
    from benchmarks.cases._actors import Idle

    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with trouper.open_node() as node:
                refs = [await node.spawn(Idle)]
                start = clock()
                for _ in range(n):
                    refs.append(await node.spawn(Idle))
                elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def trio_task_start_rate(n: int) -> float:
    async def main() -> float:
        warm_up, parked = _Parked(1), _Parked(n)
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(warm_up.idle)
                await warm_up.all_started.wait()
                start = clock()
                for _ in range(n):
                    nursery.start_soon(parked.idle)
                await parked.all_started.wait()
                elapsed = clock() - start
                warm_up.release.set()
                parked.release.set()
        return rate(n, elapsed)

    return trio.run(main)


def trouper_idle_memory(n: int) -> float:
    import trouper
    from benchmarks.cases._actors import Idle

    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with trouper.open_node() as node:
                refs = [await node.spawn(Idle)]
                await trio.testing.wait_all_tasks_blocked()
                before = rss_bytes()
                for _ in range(n):
                    refs.append(await node.spawn(Idle))
                await trio.testing.wait_all_tasks_blocked()
                after = rss_bytes()
                if len(refs) != n + 1:
                    raise AssertionError("lost a ref")
        return (after - before) / n

    return trio.run(main)


def trio_idle_task_memory(n: int) -> float:
    async def main() -> float:
        warm_up, parked = _Parked(1), _Parked(n)
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(warm_up.idle)
                await warm_up.all_started.wait()
                await trio.testing.wait_all_tasks_blocked()
                before = rss_bytes()
                for _ in range(n):
                    nursery.start_soon(parked.idle)
                await parked.all_started.wait()
                await trio.testing.wait_all_tasks_blocked()
                after = rss_bytes()
                warm_up.release.set()
                parked.release.set()
        return (after - before) / n

    return trio.run(main)
