"""local_ask_tracing: the cost of OpenTelemetry spans on a local ask.

Both sides run the same ask loop as ``local:trouper_ask``; one node traces
into an SDK ``TracerProvider`` with no exporter (every span is created,
timed and ended: the cost the runtime itself adds), the other has
``tracing=False`` (what a node with no tracer provider configured does).
"""

from __future__ import annotations

from typing import Any

import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock, rate

DEADLINE = 300.0


def _ask_loop(n: int, tracing: Any) -> float:
    import trouper
    from benchmarks.cases._actors import Counter

    async def main() -> float:
        done = trio.Event()
        with trio.fail_after(DEADLINE):
            async with trouper.open_node(tracing=tracing) as node:
                ref = await node.spawn(Counter, n, done)
                start = clock()
                for i in range(n):
                    reply = await ref.ask(Ping(i))
                    if reply != i:
                        raise AssertionError(f"ask({i}) answered {reply!r}")
                elapsed = clock() - start
                if not done.is_set():
                    raise AssertionError("the actor did not count every ask")
        return rate(n, elapsed)

    return trio.run(main)


def ask_tracing_on(n: int) -> float:
    from opentelemetry.sdk.trace import TracerProvider

    return _ask_loop(n, TracerProvider())


def ask_tracing_off(n: int) -> float:
    return _ask_loop(n, False)
