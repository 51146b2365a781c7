"""ActorContext: timers, watches, background tasks, stop; node lifecycle."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.testing

import trouper


class Tick(msgspec.Struct):
    n: int = 0


class Clocked(trouper.Actor):
    def __init__(self, log: list[tuple[str, float]]) -> None:
        self.log = log

    @trouper.handler
    async def tick(self, msg: Tick) -> None:
        self.log.append(("tick", trio.current_time()))

    @trouper.handler
    async def arm(self, msg: str) -> None:
        if msg == "after":
            self.ctx.send_after(2.0, Tick())
        elif msg == "every":
            self.timer = self.ctx.every(1.0, Tick())
        elif msg == "cancel":
            self.timer.cancel()
        elif msg == "crash":
            raise RuntimeError("crash")


async def test_send_after_and_every(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    with trio.fail_after(100):
        async with trouper.open_node() as node:
            ref = await node.spawn(Clocked, log)
            start = trio.current_time()
            await ref.tell("after")
            await trio.sleep(2.5)
            assert [t - start for _, t in log] == [pytest.approx(2.0)]
            log.clear()
            start = trio.current_time()
            await ref.tell("every")
            await trio.sleep(3.5)
            await ref.tell("cancel")
            await trio.sleep(5)
            assert [round(t - start, 3) for _, t in log] == [1.0, 2.0, 3.0]


async def test_timers_die_with_their_actor(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[str, float]] = []
    with trio.fail_after(100):
        async with trouper.open_node() as node:
            ref = await node.spawn(Clocked, log)
            await ref.tell("every")
            await ref.tell("after")
            await trio.sleep(1.5)
            assert len(log) == 1
            with pytest.raises(RuntimeError):
                await ref.ask("crash")  # restarted: the old instance's timers are gone
            await trio.sleep(10)
            assert len(log) == 1
            await ref.tell("every")
            await trio.sleep(1.5)
            await node.stop(ref)
            await trio.sleep(10)
            assert len(log) == 2


class Watcher(trouper.Actor):
    def __init__(self, seen: trio.MemorySendChannel[trouper.Terminated]) -> None:
        self.seen = seen

    @trouper.handler
    async def watch(self, msg: trouper.ActorRef) -> None:
        self.ctx.watch(msg)

    @trouper.handler
    async def unwatch(self, msg: tuple[str, trouper.ActorRef]) -> None:
        self.ctx.unwatch(msg[1])

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        await self.seen.send(msg)


class Quitter(trouper.Actor):
    @trouper.handler
    async def quit(self, msg: str) -> None:
        if msg == "stop":
            self.ctx.stop()
        else:
            raise RuntimeError(msg)


async def test_watch_delivers_terminated_once() -> None:
    send, recv = trio.open_memory_channel[trouper.Terminated](10)
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            watcher = await node.spawn(Watcher, send)
            a = await node.spawn(Quitter)
            b = await node.spawn(Quitter, restart="temporary")
            c = await node.spawn(Quitter)
            for ref in (a, b, c):
                await watcher.ask(ref)
            await a.tell("stop")  # transient + normal exit: gone
            first = await recv.receive()
            assert first == trouper.Terminated(a, "normal")
            await b.tell("bang")  # temporary + crash: gone
            second = await recv.receive()
            assert second.ref == b and second.reason.startswith("error: RuntimeError")
            await watcher.ask(("unwatch", c))
            await node.stop(c)
            await watcher.ask(a)  # watching an actor that is already dead
            assert await recv.receive() == trouper.Terminated(a, "normal")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                recv.receive_nowait()  # nothing for c, nothing twice


async def test_start_soon_failure_fails_the_actor() -> None:
    started: list[int] = []

    class Worker(trouper.Actor):
        async def on_start(self) -> None:
            started.append(1)

        @trouper.handler
        async def go(self, msg: str) -> None:
            async def background() -> None:
                raise KeyError(msg)

            self.ctx.start_soon(background)

        @trouper.handler
        async def park(self, msg: int) -> None:
            self.ctx.start_soon(trio.sleep_forever)

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Worker)
            await ref.ask(1)
            await trio.testing.wait_all_tasks_blocked()
            assert node.stats().tasks == 0  # the parked background task is not a cell task
            await ref.tell("bad")
            while len(started) < 2:
                await trio.testing.wait_all_tasks_blocked()
            assert node.stats().restarts == 1
            await ref.ask(2)
            await node.stop(ref)  # cancels its background task


async def test_open_node_unwraps_the_body_exception() -> None:
    with trio.fail_after(5):
        with pytest.raises(KeyError):
            async with trouper.open_node() as node:
                await node.spawn(Quitter)
                raise KeyError("body")


async def test_cancelling_around_a_node_is_not_a_failure() -> None:
    stopped = trio.Event()

    class Stopper(trouper.Actor):
        async def on_stop(self) -> None:
            stopped.set()

    with trio.fail_after(5):
        with trio.move_on_after(0.05) as scope:
            async with trouper.open_node() as node:
                await node.spawn(Stopper)
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert stopped.is_set()  # graceful stop ran despite the cancellation


async def test_shutdown_order_is_children_first_reverse_start() -> None:
    events: list[str] = []

    class Node_(trouper.Actor):
        def __init__(self, label: str, kids: int = 0) -> None:
            self.label = label
            self.kids = kids

        async def on_start(self) -> None:
            events.append(f"start {self.label}")
            for i in range(self.kids):
                await self.ctx.spawn(Node_, f"{self.label}.{i}")

        async def on_stop(self) -> None:
            events.append(f"stop {self.label}")

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            await node.spawn(Node_, "a", 2)
            await node.spawn(Node_, "b", 1)
            events.append("body done")
    assert events == [
        "start a",
        "start a.0",
        "start a.1",
        "start b",
        "start b.0",
        "body done",
        "stop b.0",
        "stop b",
        "stop a.1",
        "stop a.0",
        "stop a",
    ]


async def test_shutdown_timeout_cancels_what_is_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Stubborn(trouper.Actor):
        async def on_stop(self) -> None:
            await trio.sleep(1000)

        @trouper.handler
        async def hang(self, msg: str) -> None:
            await trio.sleep_forever()

    failures: list[BaseException] = []

    async def ask_forever(ref: trouper.ActorRef) -> None:
        try:
            await ref.ask("hang", timeout=None)
        except trouper.ActorDead as exc:
            failures.append(exc)

    with trio.fail_after(2000):
        start = trio.current_time()
        async with (
            trio.open_nursery() as outside,
            trouper.open_node(shutdown_timeout=3) as node,
        ):
            await node.spawn(Stubborn, shutdown=100)  # would be killed at 100s
            hung = await node.spawn(Stubborn)
            outside.start_soon(ask_forever, hung)
            await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() - start == pytest.approx(3)
        # what was left was killed, not abandoned: finalized, its asker told
        assert node.stats().actors == 0
        assert len(failures) == 1


async def test_publish_subscribe() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            assert node.publish("news", 1) == 0
            async with node.subscribe("news", buffer=2) as events:
                assert node.publish("news", "a") == 1
                node.publish("news", "b")
                node.publish("news", "c")  # over the buffer: dropped, not blocking
                assert [await events.receive(), await events.receive()] == ["a", "b"]
            assert node.publish("news", 2) == 0


def test_run_is_the_trio_run_shortcut() -> None:
    async def main(node: trouper.Node) -> str:
        ref = await node.spawn(Quitter, name="q")
        return ref.path + "@" + node.id

    assert trouper.run(main, name="solo") == "/user/q@solo"


async def test_escalation_past_the_guardian_fails_the_node() -> None:
    with trio.fail_after(5):
        with pytest.RaisesGroup(trouper.SupervisionError) as info:
            async with trouper.open_node(
                supervision=trouper.OneForOne(max_restarts=1, within=10, backoff=trouper.Backoff(0))
            ) as node:
                ref = await node.spawn(Quitter)
                for _ in range(3):
                    with pytest.raises(RuntimeError):
                        await ref.ask("boom")
                await trio.sleep_forever()
        cause = info.value.exceptions[0].__cause__
        assert isinstance(cause, RuntimeError)


class Picky(trouper.Actor):
    """Refuses negative numbers without failing (ctx.refuse)."""

    def __init__(self) -> None:
        self.starts = 0
        self.told: list[bool] = []

    async def on_start(self) -> None:
        self.starts += 1

    @trouper.handler
    async def take(self, msg: int) -> int:
        if msg < 0:
            self.told.append(self.ctx.refuse(trouper.InvalidArgument(f"{msg} is negative")))
            return 0
        return self.starts

    @trouper.handler
    async def report(self, msg: str) -> list[bool]:
        return self.told


async def test_refuse_answers_with_an_error_and_keeps_the_actor() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Picky)
            with pytest.raises(trouper.InvalidArgument, match="-1 is negative"):
                await ref.ask(-1)
            await ref.tell(-2)  # a tell: nothing to answer, and no failure either
            assert await ref.ask(1) == 1  # the same instance: never restarted
            assert await ref.ask("told") == [True, False]
