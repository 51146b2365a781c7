"""Actors, dispatch, tell/ask/stream, mailboxes, dead letters and names,
against the real runtime (nothing of trouper's is mocked)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
import trio
import trio.testing

import trouper


class Greet(msgspec.Struct):
    name: str


class Animal(msgspec.Struct):
    name: str


class Dog(Animal):
    pass


class Puppy(Dog):
    pass


class Cat(Animal):
    pass


class Boom(msgspec.Struct):
    text: str = "boom"


class Greeter(trouper.Actor):
    def __init__(self, greeting: str = "Hello") -> None:
        self.greeting = greeting

    @trouper.handler
    async def greet(self, msg: Greet) -> str:
        return f"{self.greeting}, {msg.name}!"

    @trouper.handler
    async def boom(self, msg: Boom) -> None:
        raise ValueError(msg.text)


class Zoo(trouper.Actor):
    @trouper.handler
    async def animal(self, msg: Animal) -> str:
        return f"animal {msg.name}"

    @trouper.handler
    async def dog(self, msg: Dog) -> str:
        return f"dog {msg.name}"

    @trouper.handler
    async def number(self, msg: int | float) -> str:
        return f"number {msg}"


class WithFallback(Zoo):
    async def receive(self, msg: object) -> str:
        return f"fallback {msg!r}"


async def test_ask_tell_and_tell_nowait() -> None:
    with trio.fail_after(5):
        got: list[str] = []

        class Recorder(Greeter):
            @trouper.handler
            async def greet(self, msg: Greet) -> str:
                got.append(msg.name)
                return await super().greet(msg)

        async with trouper.open_node() as node:
            ref = await node.spawn(Recorder, "Hi", name="greeter")
            assert await ref.ask(Greet("Ada")) == "Hi, Ada!"
            await ref.tell(Greet("Bob"))
            ref.tell_nowait(Greet("Cy"))
            assert await ref.ask(Greet("Di")) == "Hi, Di!"
            assert got == ["Ada", "Bob", "Cy", "Di"]


async def test_dispatch_is_subclass_aware_and_most_specific() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            zoo = await node.spawn(Zoo)
            assert await zoo.ask(Animal("a")) == "animal a"
            assert await zoo.ask(Dog("d")) == "dog d"
            assert await zoo.ask(Puppy("p")) == "dog p"  # nearest base wins
            assert await zoo.ask(Cat("c")) == "animal c"
            assert await zoo.ask(3) == "number 3"
            assert await zoo.ask(2.5) == "number 2.5"
            with pytest.raises(trouper.UnhandledMessage):
                await zoo.ask("text")
            fallback = await node.spawn(WithFallback)
            assert await fallback.ask(Dog("d")) == "dog d"  # inherited handlers
            assert await fallback.ask("text") == "fallback 'text'"


def test_handler_definitions_are_checked() -> None:
    with pytest.raises(trouper.ConfigurationError):

        @trouper.handler
        def not_async(self: object, msg: int) -> None:  # pragma: no cover
            pass

    class Twice(trouper.Actor):
        @trouper.handler
        async def a(self, msg: int) -> None:
            pass

        @trouper.handler
        async def b(self, msg: int) -> None:
            pass

    class Unannotated(trouper.Actor):
        @trouper.handler
        async def a(self, msg) -> None:  # type: ignore[no-untyped-def]
            pass

    async def spawn(cls: type[trouper.Actor]) -> None:
        async with trouper.open_node() as node:
            await node.spawn(cls)
            ref = await node.spawn(cls)
            await ref.ask(1)

    for cls in (Twice, Unannotated):
        with pytest.raises(trouper.ConfigurationError):
            trio.run(spawn, cls)


async def test_unhandled_and_failed_messages_go_to_dead_letters() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Greeter)
            async with node.dead_letters.subscribe() as letters:
                await ref.tell("nobody handles str")
                with pytest.raises(trouper.UnhandledMessage):
                    await ref.ask(42)
                first = await letters.receive()
                second = await letters.receive()
            assert first.message == "nobody handles str"
            assert first.recipient == ref and first.reason == "unhandled"
            assert second.message == 42
            assert node.dead_letters.count == 2
            with pytest.raises(ValueError, match="kaput"):
                await ref.ask(Boom("kaput"))
            assert node.dead_letters.count == 3
            # restarted (transient child crashed): same ref keeps working
            assert await ref.ask(Greet("again")) == "Hello, again!"


async def test_dead_actor_ask_fails_at_once_and_tell_is_a_dead_letter() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Greeter)
            await node.stop(ref)
            with pytest.raises(trouper.ActorDead):
                await ref.ask(Greet("x"), timeout=None)
            before = node.dead_letters.count
            await ref.tell(Greet("late"))
            ref.tell_nowait(Greet("later"))
            assert node.dead_letters.count == before + 2
            await node.dead_letters_ref.tell("explicit")
            await trio.testing.wait_all_tasks_blocked()
            assert node.dead_letters.count == before + 3


async def test_ask_timeout_never_hangs(autojump_clock: trio.testing.MockClock) -> None:
    class Slow(trouper.Actor):
        @trouper.handler
        async def slow(self, msg: float) -> str:
            await trio.sleep(msg)
            return "late"

    with trio.fail_after(60):
        async with trouper.open_node() as node:
            ref = await node.spawn(Slow)
            start = trio.current_time()
            with pytest.raises(trouper.AskTimeout) as info:
                await ref.ask(10.0, timeout=1.5)
            assert trio.current_time() - start == pytest.approx(1.5)
            assert isinstance(info.value, TimeoutError)
            assert info.value.is_retryable
            # a later answer to the abandoned ask is dropped, the actor lives on
            assert await ref.ask(0.5, timeout=30) == "late"


async def test_mailbox_is_bounded_with_backpressure() -> None:
    gate = trio.Event()
    handled: list[int] = []

    class Gated(trouper.Actor):
        @trouper.handler
        async def item(self, msg: int) -> None:
            await gate.wait()
            handled.append(msg)

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Gated, mailbox_size=3)
            await ref.tell(0)  # taken by the handler, which blocks on the gate
            await trio.testing.wait_all_tasks_blocked()
            for i in (1, 2, 3):
                ref.tell_nowait(i)
            with pytest.raises(trouper.MailboxFull):
                ref.tell_nowait(4)
            sent = trio.Event()

            async def blocked_sender() -> None:
                await ref.tell(4)
                sent.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(blocked_sender)
                await trio.testing.wait_all_tasks_blocked()
                assert not sent.is_set()  # tell waits for space
                gate.set()
                await sent.wait()
            assert await ref.ask(5) is None
            assert handled == [0, 1, 2, 3, 4, 5]


async def test_senders_blocked_on_a_full_mailbox_are_cancellable() -> None:
    gate = trio.Event()

    class Gated(trouper.Actor):
        @trouper.handler
        async def item(self, msg: int) -> int:
            await gate.wait()
            return msg

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Gated, mailbox_size=1)
            await ref.tell(0)
            await trio.testing.wait_all_tasks_blocked()
            await ref.tell(1)
            with trio.move_on_after(0.01) as scope:
                await ref.tell(2)
            assert scope.cancelled_caught
            with pytest.raises(trouper.AskTimeout):
                await ref.ask(3, timeout=0.01)
            gate.set()
            assert await ref.ask(4) == 4


async def test_streams_yield_with_flow_control() -> None:
    produced: list[int] = []

    class Numbers(trouper.Actor):
        @trouper.handler
        async def count(self, msg: int) -> AsyncIterator[int]:
            for i in range(msg):
                produced.append(i)
                yield i

        @trouper.handler
        async def fail(self, msg: str) -> AsyncIterator[int]:
            yield 1
            raise RuntimeError(msg)

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Numbers)
            async with ref.stream(5) as items:
                assert [i async for i in items] == [0, 1, 2, 3, 4]
            produced.clear()
            async with ref.stream(1000, window=4) as items:
                assert await items.__anext__() == 0
                await trio.testing.wait_all_tasks_blocked()
                # one taken + window of 4 buffered + one blocked in send
                assert len(produced) <= 6
            await trio.testing.wait_all_tasks_blocked()
            assert len(produced) <= 6  # leaving the block cancelled the producer
            async with ref.stream("bad") as items:
                assert await items.__anext__() == 1
                with pytest.raises(RuntimeError, match="bad"):
                    await items.__anext__()
            with pytest.raises(trouper.UnhandledMessage):
                await ref.ask(3)  # a stream handler cannot answer an ask
            async with ref.stream(2.5) as items:
                with pytest.raises(trouper.UnhandledMessage):
                    await items.__anext__()


async def test_leaving_a_stream_ends_a_quiet_producer_at_once() -> None:
    ended = trio.Event()

    class Quiet(trouper.Actor):
        @trouper.handler
        async def watch(self, msg: int) -> AsyncIterator[int]:
            try:
                yield msg
                await trio.sleep_forever()  # a subscription with nothing to say
                yield -1
            finally:
                ended.set()

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Quiet)
            async with ref.stream(7) as items:
                assert await items.__anext__() == 7
            await ended.wait()  # not at its next yield: now


async def test_names_are_unique_and_vanish_with_their_actor() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Greeter, name="svc")
            assert ref.path == "/user/svc"
            assert await node.lookup("svc") == ref
            assert "svc" in node.registry and node.registry.get("svc") == ref
            with pytest.raises(trouper.NameTaken):
                await node.spawn(Greeter, name="svc")
            with pytest.raises(trouper.ActorNotFound):
                await node.lookup("nope")
            await node.stop(ref)
            assert node.registry.get("svc") is None
            with pytest.raises(trouper.ActorNotFound):
                await node.lookup("svc", timeout=0.01)

            async def late_spawn() -> None:
                await trio.testing.wait_all_tasks_blocked()
                await node.spawn(Greeter, name="svc")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(late_spawn)
                found = await node.lookup("svc", timeout=2)
            assert found != ref and found.path == ref.path  # a new incarnation


async def test_refs_are_values() -> None:
    with trio.fail_after(5):
        async with trouper.open_node(name="n1") as node:
            a = await node.spawn(Greeter)
            b = await node.spawn(Greeter)
            same = trouper.ActorRef(a.node_id, a.path, a.uid)
            assert same == a and hash(same) == hash(a) and a != b
            assert len({a, b, same}) == 2
            assert a.node_id == "n1" and sorted([b, a]) == [a, b]


async def test_sender_and_children_in_context() -> None:
    class Child(trouper.Actor):
        @trouper.handler
        async def who(self, msg: str) -> trouper.ActorRef | None:
            return self.ctx.sender

    class Parent(trouper.Actor):
        async def on_start(self) -> None:
            self.kids = [await self.ctx.spawn(Child, name=f"kid{i}") for i in range(3)]

        @trouper.handler
        async def ask_kid(self, msg: int) -> bool:
            return await self.kids[msg].ask("who") == self.ctx.self_ref

        @trouper.handler
        async def children(self, msg: str) -> list[trouper.ActorRef]:
            return self.ctx.children

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            parent = await node.spawn(Parent)
            assert await parent.ask(1) is True
            kids = await parent.ask("children")
            assert [k.path for k in kids] == [f"{parent.path}/kid{i}" for i in range(3)]
            assert await kids[0].ask("who") is None  # asked from outside any actor


async def test_spawn_failures_are_refused() -> None:
    class BadInit(trouper.Actor):
        def __init__(self) -> None:
            raise OSError("no")

    class BadStart(trouper.Actor):
        async def on_start(self) -> None:
            raise OSError("no start")

    with trio.fail_after(5):
        async with trouper.open_node() as node:
            with pytest.raises(trouper.SpawnRefused) as info:
                await node.spawn(BadInit, name="x")
            assert isinstance(info.value.__cause__, OSError)
            with pytest.raises(trouper.SpawnRefused):
                await node.spawn(BadStart, name="x")
            assert node.registry.get("x") is None
            with pytest.raises(trouper.ConfigurationError):
                await node.spawn(Greeter, name="a/b")
            with pytest.raises(trouper.ConfigurationError):
                await node.spawn(object)  # type: ignore[arg-type]
            with pytest.raises(trouper.ConfigurationError):
                await node.spawn(Greeter, on="elsewhere")
