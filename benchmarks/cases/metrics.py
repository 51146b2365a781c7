"""local_tell_metrics: the cost of the metrics on the hot path.

The same local tell workload as ``local_tell``, on a node with ``metrics=True``
(the default: per-batch counts, one batch in 16 timed) against one with
``metrics=False``. The metrics side scrapes once at the end and checks that
every message was counted, so a case that stopped counting cannot pass.
"""

from __future__ import annotations

import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock, rate

DEADLINE = 300.0


def _tell(n: int, metrics: bool) -> float:
    import trouper
    from benchmarks.cases._actors import Counter
    from trouper.observability import metrics_text

    async def main() -> float:
        done = trio.Event()
        with trio.fail_after(DEADLINE):
            async with trouper.open_node(metrics=metrics) as node:
                ref = await node.spawn(Counter, n, done)
                start = clock()
                for i in range(n):
                    await ref.tell(Ping(i))
                await done.wait()
                elapsed = clock() - start
                body, _ = metrics_text(node)
                line = f'actor_class="benchmarks.cases._actors.Counter",outcome="ok"}} {float(n)}'
                if metrics and line.encode() not in body:
                    raise AssertionError("the metrics did not count every message")
        return rate(n, elapsed)

    return trio.run(main)


def tell_metrics_on(n: int) -> float:
    return _tell(n, True)


def tell_metrics_off(n: int) -> float:
    return _tell(n, False)
