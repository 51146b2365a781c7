"""The client node's three measurements against the server's ``echo`` actor.

* ``ask_latency``: ``askers`` tasks each ask in a loop for ``duration`` seconds; every
  ask's round-trip time is one sample.
* ``bulk``: one ``stream()`` of fixed-size byte chunks, consumed for ``duration`` seconds.
* ``ask_during_bulk``: the same askers while a bulk stream runs on the same link, to see
  the asks queue behind the stream's bytes (head-of-line blocking).

An ask that times out is counted as failed and enters the percentiles at its timeout, a
lower bound of its latency, so losses cannot make the percentiles look better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import trio

import trouper
from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock
from benchmarks.net._actors import Bulk

SETTLE = 0.5  # seconds the bulk stream runs before the asks start, to fill the pipe


@dataclass(slots=True)
class Latencies:
    samples: list[float] = field(default_factory=list)  # seconds
    failed: int = 0

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        return {
            "asks": len(ordered),
            "failed": self.failed,
            "p50_ms": _ms(percentile(ordered, 50)),
            "p99_ms": _ms(percentile(ordered, 99)),
            "max_ms": _ms(ordered[-1] if ordered else None),
        }


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _mib_s(count: int, seconds: float) -> float:
    return round(count / seconds / 2**20, 3) if seconds > 0 else 0.0


async def ask_latency(
    ref: trouper.ActorRef, *, askers: int, duration: float, timeout: float
) -> Latencies:
    """Run ``askers`` sequential ask loops for ``duration`` s; wait for the last replies."""
    result = Latencies()
    deadline = trio.current_time() + duration

    async def asker(first: int) -> None:
        n = first
        while trio.current_time() < deadline:
            started = clock()
            try:
                reply = await ref.ask(Ping(n), timeout=timeout)
            except trouper.AskTimeout:
                result.failed += 1
                result.samples.append(timeout)
                continue
            result.samples.append(clock() - started)
            if reply.n != n:
                raise AssertionError(f"ask {n} answered {reply!r}")
            n += askers

    async with trio.open_nursery() as nursery:
        for i in range(askers):
            nursery.start_soon(asker, i)
    return result


async def _consume(
    ref: trouper.ActorRef, chunk: int, window: int, counter: list[int], started: trio.Event
) -> None:
    async with ref.stream(Bulk(chunk), window=window) as items:
        started.set()
        async for item in items:
            counter[0] += len(item)
    raise AssertionError("the bulk stream ended by itself")


async def bulk(ref: trouper.ActorRef, *, chunk: int, window: int, duration: float) -> float:
    """MiB/s received from one bulk stream over ``duration`` seconds."""
    counter = [0]
    started = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_consume, ref, chunk, window, counter, started)
        await started.wait()
        begin = clock()
        await trio.sleep(duration)
        received, elapsed = counter[0], clock() - begin
        nursery.cancel_scope.cancel()
    return _mib_s(received, elapsed)


async def ask_during_bulk(
    ref: trouper.ActorRef,
    *,
    askers: int,
    duration: float,
    timeout: float,
    chunk: int,
    window: int,
) -> dict[str, Any]:
    """Ask latency while one bulk stream runs; the stream's rate over the same window."""
    counter = [0]
    started = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_consume, ref, chunk, window, counter, started)
        await started.wait()
        await trio.sleep(SETTLE)
        before, begin = counter[0], clock()
        latencies = await ask_latency(ref, askers=askers, duration=duration, timeout=timeout)
        received, elapsed = counter[0] - before, clock() - begin
        nursery.cancel_scope.cancel()
    return {**latencies.summary(), "bulk_mib_s": _mib_s(received, elapsed)}
