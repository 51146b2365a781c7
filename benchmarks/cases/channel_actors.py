"""The actor the channel cases run, in this process or on a child node
(``allow_spawn=["benchmarks.cases.channel_actors:*"]``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

import trouper
from benchmarks.cases._messages import Ping


class Gulp(msgspec.Struct):
    """Open a channel: the handler counts the Pings sent, and sends the count back."""


class Spout(msgspec.Struct):
    """Stream ``n`` Pings (the baseline: one direction, the same items)."""

    n: int


class Drinker(trouper.Actor):
    @trouper.handler
    async def gulp(self, msg: Gulp, channel: trouper.Channel[int, Ping]) -> None:
        count = 0
        async for _ in channel:
            count += 1
        await channel.send(count)

    @trouper.handler
    async def spout(self, msg: Spout) -> AsyncIterator[Ping]:
        for i in range(msg.n):
            yield Ping(i)
