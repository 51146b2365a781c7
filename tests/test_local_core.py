"""The local core holds (issue 10, item 7).

A handler's ``BaseException`` fails that actor only; ``KeyboardInterrupt``
stops the node cleanly, ``on_stop`` included; a stream consumer that leaves
early ends only that stream; ``ask(timeout=0)`` is deterministic; no timer
or name-waiter structure outlives its use.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

import trouper
from trouper.runtime import cell_of


class Weird(BaseException):
    """Not an Exception: raised by some libraries' internals, or by mistake."""


class Fragile(trouper.Actor):
    starts = 0

    def __init__(self, stopped: list[str]) -> None:
        self.stopped = stopped
        type(self).starts += 1

    @trouper.handler
    async def blow(self, msg: str) -> str:
        if msg == "weird":
            raise Weird("not an Exception")
        if msg == "exit":
            raise SystemExit(3)
        if msg == "genexit":
            raise GeneratorExit
        if msg == "interrupt":
            raise KeyboardInterrupt
        return msg

    async def on_stop(self) -> None:
        self.stopped.append(self.ctx.self_ref.path)


@pytest.mark.parametrize("kind", ["weird", "exit", "genexit"])
async def test_a_base_exception_fails_that_actor_only(kind: str) -> None:
    stopped: list[str] = []
    Fragile.starts = 0
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            fragile = await node.spawn(Fragile, stopped, restart="permanent")
            other = await node.spawn(Fragile, stopped, name="other")
            with pytest.raises(BaseException) as info:
                await fragile.ask(kind)
            assert not isinstance(info.value, trio.Cancelled | KeyboardInterrupt)
            # restarted by its supervisor, like after any failure
            assert await fragile.ask("again") == "again"
            assert Fragile.starts == 3
            assert await other.ask("fine") == "fine"
        assert "/user/other" in stopped


async def test_keyboard_interrupt_in_a_handler_stops_the_node_gracefully() -> None:
    stopped: list[str] = []
    with trio.fail_after(10), pytest.raises(KeyboardInterrupt):
        async with trouper.open_node() as node:
            fragile = await node.spawn(Fragile, stopped, name="fragile")
            await node.spawn(Fragile, stopped, name="bystander")
            fragile.tell_nowait("interrupt")
            await trio.sleep_forever()
    assert sorted(stopped) == ["/user/bystander", "/user/fragile"]


class Nested(trouper.Actor):
    def __init__(self, closed_all: trio.Event, expected: int) -> None:
        self.closed = 0
        self.closed_all = closed_all
        self.expected = expected

    @trouper.handler
    async def numbers(self, msg: int) -> AsyncIterator[int]:
        # Yielding inside a nursery: when the consumer leaves, closing the
        # generator raises out of the nursery (trio forbids exactly this).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            try:
                for i in range(msg):
                    yield i
            finally:
                self.closed += 1
                if self.closed == self.expected:
                    self.closed_all.set()
                nursery.cancel_scope.cancel()

    @trouper.handler
    async def closed_count(self, msg: str) -> int:
        return self.closed


async def test_a_consumer_leaving_early_ends_only_that_stream() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            closed_all = trio.Event()
            ref = await node.spawn(Nested, closed_all, 4)
            for _ in range(3):
                async with ref.stream(1000, window=2) as items:
                    async for item in items:
                        if item == 5:
                            break
            async with ref.stream(3) as items:
                assert [i async for i in items] == [0, 1, 2]
            await closed_all.wait()  # each generator was closed, none failed
            assert await ref.ask("closed") == 4
            assert node.stats().restarts == 0


async def test_ask_timeout_zero_is_deterministic() -> None:
    class Counter(trouper.Actor):
        def __init__(self) -> None:
            self.n = 0

        @trouper.handler
        async def count(self, msg: int) -> int:
            self.n += msg
            return self.n

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter)
            for timeout in [0, 0.0, -1.0] * 70:
                with pytest.raises(trouper.AskTimeout):
                    await ref.ask(1, timeout=timeout)
            assert await ref.ask(0) == 0  # none of them was delivered
            with pytest.raises(trouper.ConfigurationError, match="nan"):
                await ref.ask(1, timeout=math.nan)


async def test_ask_timers_do_not_outlive_their_asks(autojump_clock: trio.testing.MockClock) -> None:
    class Echo(trouper.Actor):
        @trouper.handler
        async def echo(self, msg: int) -> int:
            if msg < 0:
                await trio.sleep(-msg)
            return msg

    async with trouper.open_node() as node:
        ref = await node.spawn(Echo)
        timers = node.kernel.timers
        for i in range(1000):
            assert await ref.ask(i, timeout=1.0 + i / 1000) == i  # 1000 distinct timeouts
        assert timers.ask_queues == 0  # answered: nothing is kept until their deadlines
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.ask, -1)  # pending for a second of (virtual) time
            await trio.testing.wait_all_tasks_blocked()
            assert timers.ask_queues == 1
        assert timers.ask_queues == 0
        with pytest.raises(trouper.AskTimeout):
            await ref.ask(-10, timeout=0.5)
        assert timers.ask_queues == 0
        assert len(timers) == 0


async def test_asks_one_after_another_share_one_timer_entry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An answered ask leaves its timeout's queue armed for the next one: a
    thousand asks in a row push one heap entry, not a thousand (each would
    wake the timer task when due), and the reused queue still times out."""

    class Echo(trouper.Actor):
        @trouper.handler
        async def echo(self, msg: int) -> int:
            if msg < 0:
                await trio.sleep(-msg)
            return msg

    async with trouper.open_node() as node:
        ref = await node.spawn(Echo)
        timers = node.kernel.timers
        before = timers.heap_size
        for i in range(1000):
            assert await ref.ask(i, timeout=2.0) == i
        assert timers.heap_size - before <= 1
        assert timers.ask_queues == 0
        await trio.sleep(1.5)  # the armed deadline is now earlier than a new ask's
        with pytest.raises(trouper.AskTimeout):
            await ref.ask(-10, timeout=2.0)
        assert timers.ask_queues == 0
        await trio.sleep(5)  # every watch has fired: nothing is kept
        assert timers.heap_size <= before


async def test_cancelled_timers_do_not_pile_up(autojump_clock: trio.testing.MockClock) -> None:
    class Sleeper(trouper.Actor):
        @trouper.handler
        async def arm(self, msg: int) -> None:
            for _ in range(msg):
                self.ctx.send_after(3600, "never").cancel()

        @trouper.handler
        async def never(self, msg: str) -> None:
            raise AssertionError("a cancelled timer fired")

    async with trouper.open_node() as node:
        ref = await node.spawn(Sleeper)
        await ref.ask(10_000)
        # Compaction keeps the heap near what is live, not everything ever armed.
        assert len(node.kernel.timers) <= 2 * 1024 + 1


async def test_name_waiters_do_not_outlive_their_lookups(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node() as node:
        names = node.kernel.names
        for i in range(500):
            with pytest.raises(trouper.ActorNotFound):
                await node.lookup(f"never-{i}", timeout=0.01)
        assert names.waiting == 0

        async def wait(name: str) -> trouper.ActorRef:
            return await node.lookup(name, timeout=10)

        class Nobody(trouper.Actor):
            pass

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(wait, "late")
            await trio.testing.wait_all_tasks_blocked()
            assert names.waiting == 1
            await node.spawn(Nobody, name="late")
        assert names.waiting == 0


async def test_cells_keep_no_mailbox_or_waiters_when_idle() -> None:
    class Echo(trouper.Actor):
        @trouper.handler
        async def echo(self, msg: int) -> int:
            return msg

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Echo, mailbox_size=2)
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(ref.ask, i)
            await trio.testing.wait_all_tasks_blocked()
            cell = cell_of(ref)
            assert cell is not None and cell.mailbox_depth == 0
