"""Actors and messages shared by the cluster tests and the node processes they start.

A child node imports this module by name (``cluster_actors``, found through
``PYTHONPATH``) when the parent asks it to spawn ``cluster_actors:Echo``; the
test imports it under the same name, so both sides register the message types
under the same wire names (``cluster_actors:Ping``...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import trio

import trouper

#: What the tests give ``allow_spawn`` / ``--allow-spawn``: not ``NotAllowed``.
ALLOW = ["cluster_actors:Echo", "cluster_actors:Silent", "cluster_actors:Finder"]


class Ping(msgspec.Struct, frozen=True):
    n: int


class Count(msgspec.Struct, frozen=True):
    pass


class Numbers(msgspec.Struct, frozen=True):
    """Ask for a stream of ``0 .. n-1``."""

    n: int


class Boom(msgspec.Struct, frozen=True):
    text: str


class Hang(msgspec.Struct, frozen=True):
    """An ask answered only after ``seconds`` (default: never, in a test's time)."""

    seconds: float = 3600.0


class CallBack(msgspec.Struct, frozen=True):
    """Tell ``Ping(n)`` to ``to``: a ref travelling inside a message."""

    to: trouper.ActorRef
    n: int


class WhoAmI(msgspec.Struct, frozen=True):
    pass


class Quit(msgspec.Struct, frozen=True):
    """The actor stops itself."""


class Relay(msgspec.Struct, frozen=True):
    """Look ``name`` up in the cluster, ask it ``Ping(n)``, answer with the reply."""

    name: str
    n: int


class Echo(trouper.Actor):
    """Answers ``Ping(n)`` asks with ``n``; counts every Ping it receives."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self.count = 0

    @trouper.handler
    async def ping(self, msg: Ping) -> int:
        self.count += 1
        return msg.n + self.offset

    @trouper.handler
    async def get_count(self, msg: Count) -> int:
        return self.count

    @trouper.handler
    async def numbers(self, msg: Numbers) -> AsyncIterator[int]:
        for i in range(msg.n):
            yield i

    @trouper.handler
    async def boom(self, msg: Boom) -> None:
        raise ValueError(msg.text)

    @trouper.handler
    async def call_back(self, msg: CallBack) -> None:
        await msg.to.tell(Ping(msg.n))

    @trouper.handler
    async def who(self, msg: WhoAmI) -> str:
        return self.ctx.node.id

    @trouper.handler
    async def quit(self, msg: Quit) -> None:
        self.ctx.stop()


class Silent(trouper.Actor):
    """Takes a ``Hang`` ask and sits on it."""

    @trouper.handler
    async def hang(self, msg: Hang) -> str:
        await trio.sleep(msg.seconds)
        return "late"

    @trouper.handler
    async def ping(self, msg: Ping) -> int:
        return msg.n


class Finder(trouper.Actor):
    """Finds a named actor anywhere in the cluster and relays an ask to it."""

    @trouper.handler
    async def relay(self, msg: Relay) -> int:
        ref = await self.ctx.node.lookup(msg.name, timeout=10)
        result: int = await ref.ask(Ping(msg.n))
        return result


class NotAllowed(trouper.Actor):
    """Importable like the others, but left out of the tests' allow lists."""
