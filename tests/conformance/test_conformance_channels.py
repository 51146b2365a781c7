"""Two-way channels between two in-process nodes, per transport: a
conversation, credit both ways, and each side closing, cancelling or failing."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from conformance_helpers import Net

import trouper


@trouper.message
class Chat(msgspec.Struct, frozen=True):
    """Echo each item upper-cased until the opener closes, then say how many."""


@trouper.message
class Flood(msgspec.Struct, frozen=True):
    """Send ``n`` numbers without reading."""

    n: int


@trouper.message
class Sip(msgspec.Struct, frozen=True):
    """Read nothing until the test says so, then count what was sent."""


@trouper.message
class Quit(msgspec.Struct, frozen=True):
    """Read one item, then cancel the channel (``"quit"``) or fail (``"fail"``)."""

    how: str


class Tally:
    """A count that a test can wait on (no polling)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = trio.Event()

    def bump(self) -> None:
        self.count += 1
        self.changed.set()
        self.changed = trio.Event()

    async def reach(self, n: int) -> None:
        while self.count < n:
            await self.changed.wait()


class Peer(trouper.Actor):
    def __init__(self, sent: Tally, release: trio.Event) -> None:
        self.sent = sent
        self.release = release

    @trouper.handler
    async def chat(self, msg: Chat, channel: trouper.Channel[str, str]) -> None:
        count = 0
        async for line in channel:
            count += 1
            await channel.send(line.upper())
        await channel.send(f"{count} lines")

    @trouper.handler
    async def flood(self, msg: Flood, channel: trouper.Channel[int, Any]) -> None:
        for i in range(msg.n):
            await channel.send(i)
            self.sent.bump()

    @trouper.handler
    async def sip(self, msg: Sip, channel: trouper.Channel[int, bytes]) -> None:
        await self.release.wait()
        await channel.send(sum([len(x) async for x in channel]))

    @trouper.handler
    async def quit(self, msg: Quit, channel: trouper.Channel[Any, Any]) -> None:
        await channel.receive()
        if msg.how == "fail":
            raise RuntimeError("handler gave up")
        channel.cancel("handler quit")


async def chat(ch: trouper.Channel[str, str], lines: list[str]) -> list[str]:
    got: list[str] = []

    async def read() -> None:
        got.extend([x async for x in ch])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for line in lines:
            await ch.send(line)
        await ch.close()
    return got


async def test_channels(net: Net) -> None:
    sent = Tally()
    release = trio.Event()
    with trio.fail_after(30):
        async with net.cluster(2) as (a, b):
            await b.spawn(Peer, sent, release, name="peer")
            ref = await a.lookup("peer", timeout=5)
            assert ref is not None and ref.node_id == "n1"

            # a conversation, and several at once over one link
            async with ref.channel(Chat(), window=2) as ch:
                lines = [f"line {i}" for i in range(100)]
                assert await chat(ch, lines) == [x.upper() for x in lines] + ["100 lines"]
            async with trio.open_nursery() as nursery:
                for n in range(5):
                    nursery.start_soon(one_chat, ref, n)

            # credit from the opener: the handler stops at the opener's window
            async with ref.channel(Flood(50), window=4) as ch:
                await sent.reach(4)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert sent.count == 4
                assert [x async for x in ch] == list(range(50))

            # credit from the handler: the opener stops at the handler's window,
            # with items of 64 KiB (several frames' worth on every transport)
            blob = b"x" * 65536
            written = Tally()
            async with ref.channel(Sip(), window=3) as ch, trio.open_nursery() as nursery:

                async def writer() -> None:
                    for _ in range(20):
                        await ch.send(blob)
                        written.bump()
                    await ch.close()

                nursery.start_soon(writer)
                await written.reach(3)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert written.count == 3
                release.set()
                assert [x async for x in ch] == [20 * 65536]

            # the handler cancels, or fails: the opener hears why
            for how, cause in (("quit", "handler quit"), ("fail", "handler gave up")):
                async with ref.channel(Quit(how)) as ch:
                    await ch.send(1)
                    with pytest.raises(trouper.ChannelClosed, match=cause):
                        await ch.receive()

            # the opener leaves early: only that channel ends
            async with ref.channel(Chat()) as kept:
                async with ref.channel(Flood(10_000), window=2) as left:
                    assert await left.receive() == 0
                assert await chat(kept, ["still"]) == ["STILL", "1 lines"]


async def one_chat(ref: trouper.ActorRef, n: int) -> None:
    async with ref.channel(Chat(), window=1) as ch:
        lines = [f"{n}:{i}" for i in range(30)]
        assert await chat(ch, lines) == [*lines, "30 lines"]
