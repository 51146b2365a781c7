"""cluster_tell_scaling: aggregate local tell throughput, 2 node processes against 1.

Both sides do the same total work: ``PAIRS`` sender tasks, each telling ``n // PAIRS`` Pings
to its own Counter actor, driven by ``LoadDriver`` actors (``Prepare`` untimed, then ``Go``
timed until every counter has counted). The baseline runs all pairs in one node, in this
process; the trouper side spawns two node processes and gives each half of the pairs, so the
ratio is the speed-up from the second core.
"""

from __future__ import annotations

import trio

from benchmarks.cases._timing import clock, rate

DEADLINE = 300.0  # seconds; a hung side fails loudly instead of stalling the run
PAIRS = 4  # sender -> actor pairs in total, split evenly across the nodes
NODES = 2
COOKIE = b"trouper-benchmarks"
ALLOW = ["benchmarks.cases.remote_actors:*"]


def single_node_tell(n: int) -> float:
    import trouper
    from benchmarks.cases.remote_actors import Go, LoadDriver, Prepare

    async def main() -> float:
        per_pair = n // PAIRS
        with trio.fail_after(DEADLINE):
            async with trouper.open_node(name="solo") as node:
                driver = await node.spawn(LoadDriver)
                await driver.ask(Prepare(PAIRS, per_pair), timeout=None)
                start = clock()
                total = await driver.ask(Go(), timeout=None)
                elapsed = clock() - start
        if total != PAIRS * per_pair:
            raise AssertionError(f"counted {total} of {PAIRS * per_pair}")
        return rate(total, elapsed)

    return trio.run(main)


def two_node_tell(n: int) -> float:
    import trouper
    from benchmarks.cases.remote_actors import Go, LoadDriver, Prepare

    async def main() -> float:
        per_pair = n // PAIRS
        totals: list[int] = []

        async def go(driver: trouper.ActorRef) -> None:
            totals.append(await driver.ask(Go(), timeout=None))

        with trio.fail_after(DEADLINE):
            async with trouper.open_node(
                name="parent", listen=["tcp://127.0.0.1:0"], cookie=COOKIE
            ) as node:
                drivers = []
                for k in range(NODES):
                    await node.spawn_node(name=f"worker{k}", allow_spawn=ALLOW)
                    driver = await node.spawn(LoadDriver, on=f"worker{k}")
                    await driver.ask(Prepare(PAIRS // NODES, per_pair), timeout=None)
                    drivers.append(driver)
                start = clock()
                async with trio.open_nursery() as nursery:
                    for driver in drivers:
                        nursery.start_soon(go, driver)
                elapsed = clock() - start
        if sum(totals) != PAIRS * per_pair:
            raise AssertionError(f"counted {sum(totals)} of {PAIRS * per_pair}")
        return rate(sum(totals), elapsed)

    return trio.run(main)
