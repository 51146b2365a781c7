"""publish_fanout_2_nodes: event deliveries per second, 1,000 subscribers on 2 nodes vs 1.

Both sides publish ``n`` ``Tick`` events on one topic from the same node, to 1,000 actor
subscribers (``ctx.subscribe``): the baseline has all of them in that node (one process);
the trouper side has 500 there and 500 on a node process it spawns, so each publish sends
ONE message to the other node, which fans it out to its 500. The publisher goes in windows
of ``WINDOW`` events and waits until every subscriber has handled them (no event may be
dropped: the count is checked), so the rate is of deliveries actually handled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from benchmarks.cases._timing import clock, rate

if TYPE_CHECKING:
    import trouper

DEADLINE = 300.0
SUBSCRIBERS = 1_000
WINDOW = 200  # events per window: under the subscribers' mailbox size (1000)
COOKIE = b"trouper-benchmarks"
ALLOW = ["benchmarks.cases.pubsub_actors:*"]


async def _wait_for(host: trouper.ActorRef, deliveries: int) -> None:
    from benchmarks.cases.pubsub_actors import WaitFor

    await host.ask(WaitFor(deliveries), timeout=None)


async def _run(node: trouper.Node, hosts: list[tuple[trouper.ActorRef, int]], n: int) -> float:
    from benchmarks.cases.pubsub_actors import TOPIC, Tick

    while True:  # interest from the other node has arrived
        if node.subscribers(TOPIC) >= SUBSCRIBERS:
            break
        await trio.sleep(0.01)
    published = 0
    start = clock()
    while published < n:
        batch = min(WINDOW, n - published)
        for i in range(batch):
            if node.publish(TOPIC, Tick(published + i)) != SUBSCRIBERS:
                raise AssertionError("a publish did not reach every subscriber")
        published += batch
        async with trio.open_nursery() as nursery:
            for host, count in hosts:
                nursery.start_soon(_wait_for, host, published * count)
    elapsed = clock() - start
    stats = node.event_statistics()
    if stats.dropped or stats.remote_dropped:
        raise AssertionError(f"events were dropped: {stats}")
    return rate(n * SUBSCRIBERS, elapsed)


def one_node_fanout(n: int) -> float:
    import trouper
    from benchmarks.cases.pubsub_actors import Host, Prepare

    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with trouper.open_node(name="solo") as node:
                host = await node.spawn(Host)
                await host.ask(Prepare(SUBSCRIBERS), timeout=None)
                return await _run(node, [(host, SUBSCRIBERS)], n)

    return trio.run(main)


def two_node_fanout(n: int) -> float:
    import trouper
    from benchmarks.cases.pubsub_actors import Host, Prepare

    async def main() -> float:
        half = SUBSCRIBERS // 2
        with trio.fail_after(DEADLINE):
            async with trouper.open_node(
                name="publisher", listen=["tcp://127.0.0.1:0"], cookie=COOKIE
            ) as node:
                await node.spawn_node(name="fanout", allow_spawn=ALLOW)
                here = await node.spawn(Host)
                there = await node.spawn(Host, on="fanout")
                await here.ask(Prepare(half), timeout=None)
                await there.ask(Prepare(SUBSCRIBERS - half), timeout=None)
                return await _run(node, [(here, half), (there, SUBSCRIBERS - half)], n)

    return trio.run(main)
