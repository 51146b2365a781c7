"""Actors and messages of the two-way channel tests (local, remote, conformance).

Each test module imports this one by name, so that both nodes of a test (in
one process) decode the same message types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import trio

import trouper


@trouper.message
class Talk(msgspec.Struct, frozen=True):
    """Open a conversation: the handler greets, then echoes each line upper-cased
    until the opener closes, then says how many lines it heard."""

    greeting: str


@trouper.message
class Pour(msgspec.Struct, frozen=True):
    """The handler sends ``n`` numbers without reading, then returns."""

    n: int


@trouper.message
class Drink(msgspec.Struct, frozen=True):
    """The handler reads nothing until told to (``Gauge.release``), then
    reads everything and sends back how many items it read."""


@trouper.message
class Fail(msgspec.Struct, frozen=True):
    """The handler reads one item, then raises ``ValueError`` naming it."""


@trouper.message
class Abandon(msgspec.Struct, frozen=True):
    """The handler reads one item, then cancels the channel with ``reason``."""

    reason: str


@trouper.message
class Hold(msgspec.Struct, frozen=True):
    """The handler sends one item, then waits on its channel for ever."""


@trouper.message
class HalfClose(msgspec.Struct, frozen=True):
    """The handler sends ``n`` items, closes its side, then echoes what it
    receives into ``Gauge.heard`` until the opener's end."""

    n: int


@trouper.message
class Report(msgspec.Struct, frozen=True):
    """Ask what the gauge saw: (sent, read, outcomes)."""


class Gauge:
    """What the handlers of one node did: counts, and how channels ended."""

    def __init__(self) -> None:
        self.sent = 0
        self.read = 0
        self.heard: list[Any] = []
        self.outcomes: list[str] = []
        self.release = trio.Event()
        self.changed = trio.Event()
        self.active = 0  # channel handlers running now

    @contextmanager
    def running(self) -> Iterator[None]:
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self.poke()

    def note(self, outcome: str) -> None:
        self.outcomes.append(outcome)
        self.poke()

    def poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class Talker(trouper.Actor):
    """Every channel handler of the tests; ``gauge`` is shared with the test."""

    def __init__(self, gauge: Gauge | None = None) -> None:
        self.gauge = gauge or Gauge()
        self.gauge.note("started")

    @trouper.handler
    async def talk(self, msg: Talk, channel: trouper.Channel[str, str]) -> None:
        with self.gauge.running():
            await channel.send(msg.greeting)
            lines = 0
            async for line in channel:
                lines += 1
                await channel.send(line.upper())
            await channel.send(f"heard {lines}")
            self.gauge.note("talk done")

    @trouper.handler
    async def pour(self, msg: Pour, channel: trouper.Channel[int, Any]) -> None:
        try:
            for i in range(msg.n):
                await channel.send(i)
                self.gauge.sent += 1
                self.gauge.poke()
        except trouper.ChannelClosed as exc:
            self.gauge.note(f"pour closed: {exc}")
            raise
        self.gauge.note("pour done")

    @trouper.handler
    async def drink(self, msg: Drink, channel: trouper.Channel[int, int]) -> None:
        with self.gauge.running():
            await self.gauge.release.wait()
            async for _ in channel:
                self.gauge.read += 1
            await channel.send(self.gauge.read)
            self.gauge.note("drink done")

    @trouper.handler
    async def fail(self, msg: Fail, channel: trouper.Channel[Any, str]) -> None:
        item = await channel.receive()
        raise ValueError(f"cannot digest {item!r}")

    @trouper.handler
    async def abandon(self, msg: Abandon, channel: trouper.Channel[Any, Any]) -> None:
        await channel.receive()
        channel.cancel(msg.reason)
        self.gauge.note("abandoned")

    @trouper.handler
    async def hold(self, msg: Hold, channel: trouper.Channel[str, Any]) -> None:
        with self.gauge.running():
            await self._hold(channel)

    async def _hold(self, channel: trouper.Channel[str, Any]) -> None:
        await channel.send("holding")
        try:
            async for item in channel:
                self.gauge.heard.append(item)
                self.gauge.poke()
        except trouper.ChannelClosed as exc:
            self.gauge.note(f"hold closed: {exc}")
            raise
        except trio.Cancelled:
            self.gauge.note("hold cancelled")
            raise
        self.gauge.note("hold ended")

    @trouper.handler
    async def half(self, msg: HalfClose, channel: trouper.Channel[int, Any]) -> None:
        for i in range(msg.n):
            await channel.send(i)
        await channel.close()
        try:
            await channel.send(-1)
        except trouper.ChannelClosed:
            self.gauge.note("send after close refused")
        async for item in channel:
            self.gauge.heard.append(item)
        self.gauge.note("half done")

    @trouper.handler
    async def report(self, msg: Report) -> tuple[int, int, list[str]]:
        return self.gauge.sent, self.gauge.read, list(self.gauge.outcomes)

    @trouper.handler
    async def plain(self, msg: str) -> str:
        return msg


async def until(gauge: Gauge, predicate: Any) -> None:
    """Wait (the caller bounds it with ``fail_after``) until ``predicate()``
    holds of what the handlers did."""
    while not predicate():
        await gauge.changed.wait()


async def shared_side(ref: trouper.ActorRef) -> None:
    got: list[str] = []
    with trio.fail_after(10):
        async with ref.channel(Talk("go"), window=1) as ch:
            assert await ch.receive() == "go"

            async def write(tag: str) -> None:
                for i in range(50):
                    await ch.send(f"{tag}{i}")

            async def read() -> None:
                async for line in ch:
                    got.append(line)

            async with trio.open_nursery() as readers:
                readers.start_soon(read)
                readers.start_soon(read)
                async with trio.open_nursery() as writers:
                    writers.start_soon(write, "a")
                    writers.start_soon(write, "b")
                await ch.close()
    expected = {f"{tag}{i}".upper() for tag in "ab" for i in range(50)}
    assert len(got) == 101 and set(got) == expected | {"heard 100"}
