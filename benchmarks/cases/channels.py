"""local_channel, remote_channel: items per second through a two-way channel
(opener -> handler, credit flowing back), against a stream of the same items
(handler -> consumer) on the same actor. Remote: two processes on loopback TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock, rate

if TYPE_CHECKING:
    import trouper

DEADLINE = 300.0
WINDOW = 64
WARMUP = 500
COOKIE = b"trouper-benchmarks"
ALLOW = ["benchmarks.cases.channel_actors:*"]


@asynccontextmanager
async def drinker(remote: bool) -> AsyncIterator[trouper.ActorRef]:
    import trouper
    from benchmarks.cases.channel_actors import Drinker

    if not remote:
        async with trouper.open_node() as node:
            yield await node.spawn(Drinker)
        return
    listen = "tcp://127.0.0.1:0"
    async with trouper.open_node(name="a", listen=[listen], cookie=COOKIE) as node:
        await node.spawn_node(name="b", allow_spawn=ALLOW, listen=listen)
        yield await node.spawn(Drinker, on="b")


async def send_through(ref: trouper.ActorRef, n: int) -> None:
    from benchmarks.cases.channel_actors import Gulp

    async with ref.channel(Gulp(), window=WINDOW) as channel:
        for i in range(n):
            await channel.send(Ping(i))
        await channel.close()
        count = await channel.receive()
    if count != n:
        raise AssertionError(f"the handler counted {count} of {n}")


async def stream_from(ref: trouper.ActorRef, n: int) -> None:
    from benchmarks.cases.channel_actors import Spout

    count = 0
    async with ref.stream(Spout(n), window=WINDOW) as items:
        async for _ in items:
            count += 1
    if count != n:
        raise AssertionError(f"the stream gave {count} of {n}")


def measure(n: int, remote: bool, run: object) -> float:
    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with drinker(remote) as ref:
                await run(ref, WARMUP)  # type: ignore[operator]
                start = clock()
                await run(ref, n)  # type: ignore[operator]
                elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def trouper_local_channel(n: int) -> float:
    return measure(n, False, send_through)


def trouper_local_stream(n: int) -> float:
    return measure(n, False, stream_from)


def trouper_remote_channel(n: int) -> float:
    return measure(n, True, send_through)


def trouper_remote_stream(n: int) -> float:
    return measure(n, True, stream_from)
