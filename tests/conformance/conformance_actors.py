"""Messages and actors of the transport conformance suite.

Node processes started by the node-down tests import this module by name
(``conformance_actors``, found through ``PYTHONPATH``) when the parent spawns
``conformance_actors:Echo`` on them; the tests import it under the same name,
so both sides register the message types under the same wire names.

``Echo`` and ``Silent`` may run on any node. The others take Python objects
(channels, events) as constructor arguments, so they are only ever spawned on
a node in the test's own process; their messages still cross the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import trio

import trouper

#: What the node processes may spawn (``--allow-spawn``).
ALLOW = ["conformance_actors:Echo", "conformance_actors:Silent"]


@trouper.message
class Ping(msgspec.Struct, frozen=True):
    n: int


@trouper.message
class Pong(msgspec.Struct, frozen=True):
    """The answer to ``Ping(n)``: ``n + 1``, and which node answered."""

    n: int
    by: str


@trouper.message
class Count(msgspec.Struct, frozen=True):
    """Ask how many Pings and Blobs an Echo has handled."""


@trouper.message
class Numbers(msgspec.Struct, frozen=True):
    """Ask for a stream of ``0 .. n-1``."""

    n: int


@trouper.message
class Blob(msgspec.Struct, frozen=True):
    """A bytes payload; an Echo answers with the bytes reversed."""

    data: bytes


@trouper.message
class Crash(msgspec.Struct, frozen=True):
    """The handler raises ``ValueError(text)``."""

    text: str


@trouper.message
class Quit(msgspec.Struct, frozen=True):
    """The actor stops itself."""


@trouper.message
class Hang(msgspec.Struct, frozen=True):
    """An ask answered only after ``seconds`` (default: never, in a test's time)."""

    seconds: float = 3600.0


@trouper.message
class CallBack(msgspec.Struct, frozen=True):
    """Tell ``Ping(n)`` to ``to``: a ref travelling inside a message."""

    to: trouper.ActorRef
    n: int


@trouper.message
class Hold(msgspec.Struct, frozen=True):
    """Answered with ``n`` once the Gate is released."""

    n: int


class Echo(trouper.Actor):
    def __init__(self) -> None:
        self.count = 0

    @trouper.handler
    async def ping(self, msg: Ping) -> Pong:
        self.count += 1
        return Pong(msg.n + 1, self.ctx.node.id)

    @trouper.handler
    async def blob(self, msg: Blob) -> Blob:
        self.count += 1
        return Blob(msg.data[::-1])

    @trouper.handler
    async def get_count(self, msg: Count) -> int:
        return self.count

    @trouper.handler
    async def numbers(self, msg: Numbers) -> AsyncIterator[int]:
        for i in range(msg.n):
            yield i

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        raise ValueError(msg.text)

    @trouper.handler
    async def quit(self, msg: Quit) -> None:
        self.ctx.stop()

    @trouper.handler
    async def call_back(self, msg: CallBack) -> None:
        await msg.to.tell(Ping(msg.n))


class Silent(trouper.Actor):
    """Sits on a ``Hang`` ask (one message at a time: a Ping waits behind it)."""

    @trouper.handler
    async def hang(self, msg: Hang) -> str:
        await trio.sleep(msg.seconds)
        return "late"

    @trouper.handler
    async def ping(self, msg: Ping) -> Pong:
        return Pong(msg.n + 1, self.ctx.node.id)


# ------------------------------------------------- in-process actors only


class Sink(trouper.Actor):
    """Reports what it is told: ``(message, sender)`` on a channel."""

    def __init__(self, out: trio.MemorySendChannel[tuple[Any, Any]]) -> None:
        self.out = out

    @trouper.handler
    async def blob(self, msg: Blob) -> None:
        self.out.send_nowait((msg, self.ctx.sender))

    @trouper.handler
    async def ping(self, msg: Ping) -> None:
        self.out.send_nowait((msg, self.ctx.sender))


class WatchIt(msgspec.Struct, frozen=True):
    ref: trouper.ActorRef


class Watcher(trouper.Actor):
    """Watches what it is asked to; reports every ``Terminated`` on a channel.

    ``watch_it`` is asked, not told: when the ask returns, the Watch is queued
    on the link, ahead of anything the caller sends that way afterwards.
    """

    def __init__(self, out: trio.MemorySendChannel[trouper.Terminated]) -> None:
        self.out = out

    @trouper.handler
    async def watch_it(self, msg: WatchIt) -> None:
        self.ctx.watch(msg.ref)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        self.out.send_nowait(msg)


class Gate(trouper.Actor):
    """Holds a ``Hold`` ask until ``release`` is set; ``arrived`` says it came."""

    def __init__(self, arrived: trio.Event, release: trio.Event) -> None:
        self.arrived = arrived
        self.release = release

    @trouper.handler
    async def hold(self, msg: Hold) -> int:
        self.arrived.set()
        await self.release.wait()
        return msg.n


class FloodState:
    """What a Firehose did: items produced, and whether its generator ended."""

    def __init__(self) -> None:
        self.produced = 0
        self.finished = trio.Event()


class Firehose(trouper.Actor):
    def __init__(self, state: FloodState) -> None:
        self.state = state

    @trouper.handler
    async def flood(self, msg: Numbers) -> AsyncIterator[int]:
        try:
            for i in range(msg.n):
                self.state.produced += 1
                yield i
        finally:
            self.state.finished.set()
