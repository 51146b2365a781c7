"""A worker pool under a 10x load spike: p99 latency, sizing policy vs fixed size.

Asks arrive at a steady rate, then at ten times that rate for ``n`` milliseconds,
then at the steady rate again; each worker spends about 1 ms in ``trio.sleep``
("I/O") per message. Latency runs from when an ask was *due* (not when the sender
got round to it), so a backlog shows in full. The smart pool starts at ``min``
workers and grows with the one sizing policy; the baseline is the same pool held
at ``min`` (``max=min``). Both return the p99 latency in milliseconds.
"""

from __future__ import annotations

import math

STEADY_RATE = 300  # asks per second, well within what `min` workers serve
SPIKE = 10  # the spike's rate is SPIKE x STEADY_RATE
MIN_WORKERS = 2
MAX_WORKERS = 64


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] * 1000.0


def _run(n: int, max_workers: int) -> float:
    import trio

    import trouper

    from .pool_actors import Job, Worker

    spike_ms = max(100, n)
    steady_ms = max(100, n // 3)
    # (start ms, end ms, rate per second) of each phase
    phases = [
        (0, steady_ms, STEADY_RATE),
        (steady_ms, steady_ms + spike_ms, STEADY_RATE * SPIKE),
        (steady_ms + spike_ms, 2 * steady_ms + spike_ms, STEADY_RATE),
    ]
    latencies: list[float] = []

    async def main() -> None:
        async with trouper.open_node(mailbox_size=100_000) as node:
            pool = await node.spawn_pool(
                Worker, min=MIN_WORKERS, max=max_workers, max_queued=100_000
            )
            start = trio.current_time()

            async def one(i: int, due: float) -> None:
                await pool.ask(Job(i), timeout=None)
                latencies.append(trio.current_time() - due)

            async with trio.open_nursery() as nursery:
                i = 0
                for begin, end, per_second in phases:
                    for ms in range(begin, end):
                        due = start + ms / 1000.0
                        await trio.sleep_until(due)
                        # this millisecond's share of the rate (fractions carried)
                        count = (ms - begin + 1) * per_second // 1000 - (
                            ms - begin
                        ) * per_second // 1000
                        for _ in range(count):
                            nursery.start_soon(one, i, due)
                            i += 1

    trio.run(main)
    return _p99(latencies)


def smart_pool_p99(n: int) -> float:
    """p99 (ms) of a pool that sizes itself (min 2, max 64)."""
    return _run(n, MAX_WORKERS)


def fixed_pool_p99(n: int) -> float:
    """p99 (ms) of the same pool held at its min size (2)."""
    return _run(n, MIN_WORKERS)
