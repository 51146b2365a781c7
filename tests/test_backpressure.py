"""Backpressure is never a failure (issue 10, item 1).

Two real nodes in this process over real TCP on 127.0.0.1, with trio's
autojump clock: a slow actor's 5 ms per message costs virtual time only, so
100,000 of them run in seconds while heartbeats, phi and every deadline keep
their meaning. The sender must slow down (``tell`` waits for per-destination
credit), nothing may be declared down, everything must arrive in order, and
asks to another actor on the same link must keep completing meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper.remote import Remoting

COOKIE = b"backpressure"


class Seq(msgspec.Struct, frozen=True):
    n: int


class Slow(trouper.Actor):
    """Takes ``delay`` seconds per message and records what it got."""

    def __init__(self, delay: float, done_at: int = 0, done: trio.Event | None = None) -> None:
        self.delay = delay
        self.seen: list[int] = []
        self.done_at = done_at
        self.done = done

    @trouper.handler
    async def take(self, msg: Seq) -> None:
        self.seen.append(msg.n)
        if self.done is not None and len(self.seen) == self.done_at:
            self.done.set()
        await trio.sleep(self.delay)

    @trouper.handler
    async def count(self, msg: str) -> int:
        return len(self.seen)

    @trouper.handler
    async def numbers(self, msg: int) -> AsyncIterator[int]:
        for i in range(msg):
            yield i


class Quick(trouper.Actor):
    @trouper.handler
    async def echo(self, msg: int) -> int:
        return msg + 1


@asynccontextmanager
async def two_nodes(**options: object) -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    async with (
        trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE, **options) as a,
        trouper.open_node("b", seeds=a.addresses, cookie=COOKIE, **options) as b,
    ):
        await a.wait_for_members(2)
        await b.wait_for_members(2)
        yield a, b


def downs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]


def statuses(*nodes: trouper.Node) -> set[str]:
    return {m.status for node in nodes for m in node.members()}


async def test_100k_tells_to_a_slow_actor_slow_the_sender_and_fail_nothing(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trouper.remote")
    total, delay = 100_000, 0.005
    with trio.fail_after(3 * total * delay):  # virtual seconds
        async with two_nodes() as (a, b):
            all_seen = trio.Event()
            slow_ref = await a.spawn(Slow, delay, total, all_seen, name="slow", mailbox_size=100)
            await a.spawn(Quick, name="quick")
            slow = await b.lookup("slow", timeout=5)
            quick = await b.lookup("quick", timeout=5)
            remoting = b.remote
            assert isinstance(remoting, Remoting)
            asks = 0
            finished = trio.Event()

            async def ask_meanwhile() -> None:
                nonlocal asks
                while not finished.is_set():
                    with trio.fail_after(1.0):  # an ask never waits behind the slow mailbox
                        assert await quick.ask(asks) == asks + 1
                    asks += 1
                    await trio.sleep(0.05)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_meanwhile)
                start = trio.current_time()
                for i in range(total):
                    await slow.tell(Seq(i))
                sent = trio.current_time() - start
                # The sender could only run window + mailbox ahead of the actor.
                assert sent >= (total - 1024 - 100 - 50) * delay
                await all_seen.wait()
                finished.set()
            actor = trouper.runtime.cell_of(slow_ref).instance  # type: ignore[union-attr]
            assert isinstance(actor, Slow)
            assert actor.seen == list(range(total))  # every one, in order
            assert asks >= int(sent / 0.05) // 2  # the asks kept flowing throughout
            assert statuses(a, b) == {"up"}
            assert downs(caplog) == []
            assert remoting.statistics()["a"].credit_waiters == 0


async def test_a_blocked_actor_and_a_full_mailbox_do_not_stall_the_link(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """``mailbox_size=1``, a handler that sleeps 8 s, and remote tells and a
    stream open queued behind it: heartbeats are still read, nobody is
    declared down, and the queued work is all done afterwards."""
    caplog.set_level(logging.INFO, logger="trouper.remote")
    with trio.fail_after(120):
        async with two_nodes() as (a, b):
            await a.spawn(Slow, 8.0, name="stuck", mailbox_size=1)
            await a.spawn(Quick, name="quick")
            stuck = await b.lookup("stuck", timeout=5)
            quick = await b.lookup("quick", timeout=5)
            for i in range(4):
                await stuck.tell(Seq(i))
            got: list[int] = []

            async def consume() -> None:
                async with stuck.stream(3) as items:
                    got.extend([item async for item in items])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                for i in range(20):  # 20 virtual seconds of asks past the stuck actor
                    with trio.fail_after(1.0):
                        assert await quick.ask(i) == i + 1
                    await trio.sleep(1)
            assert got == [0, 1, 2]
            assert await stuck.ask("count", timeout=None) == 4
            assert statuses(a, b) == {"up"}
            assert downs(caplog) == []


async def test_tell_nowait_raises_mailbox_full_once_the_credit_is_spent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(60):
        async with two_nodes(tell_window=8) as (a, b):
            await a.spawn(Slow, 3600.0, name="stuck", mailbox_size=1)
            stuck = await b.lookup("stuck", timeout=5)
            for i in range(8):
                stuck.tell_nowait(Seq(i))
            with pytest.raises(trouper.MailboxFull, match="tells in flight"):
                stuck.tell_nowait(Seq(8))
            remoting = b.remote
            assert isinstance(remoting, Remoting)
            # Credit comes back for what entered the mailbox (one handled, one
            # queued): two more tells go, then the sender waits for good.
            sent = 8
            with trio.move_on_after(10) as scope:
                while True:
                    await stuck.tell(Seq(sent))  # waits for credit: sleeps, never spins
                    sent += 1
            assert scope.cancelled_caught and sent == 8 + 2
            assert remoting.statistics()["a"].credit_waiters == 0  # the waiter left


async def test_a_waiting_remote_tell_sleeps_instead_of_spinning() -> None:
    """Real clock: a tell that waits for credit costs no CPU while it waits."""
    import time

    with trio.fail_after(30):
        async with two_nodes(tell_window=4) as (a, b):
            await a.spawn(Slow, 3600.0, name="stuck", mailbox_size=1)
            stuck = await b.lookup("stuck", timeout=5)
            for i in range(4):
                await stuck.tell(Seq(i))
            cpu = time.process_time()
            with trio.move_on_after(1.5):
                await stuck.tell(Seq(4))
            # Two nodes' heartbeats and timers cost a little; a busy loop
            # would cost the whole 1.5 s.
            assert time.process_time() - cpu < 0.5
