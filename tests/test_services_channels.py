"""Service methods that take a two-way channel: ``async with proxy.m(args) as
channel``, on one node and across two real nodes over TCP: arguments checked
before anything runs, middleware before the channel opens, either side
closing or cancelling, the member's node going down mid-conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper.services._chanrpc import ChannelCall
from trouper.services._messages import Call, LocalFailure

COOKIE = b"channel-services-cookie"
SECRET = "a-test-secret-of-enough-bytes"


class Log:
    """What the methods did, shared with the test (one per test)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.contexts: list[trouper.CallContext] = []
        self.members: list[trouper.ActorRef] = []
        self.changed = trio.Event()

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.changed.set()
        self.changed = trio.Event()

    async def until(self, predicate: Callable[[list[str]], bool]) -> None:
        """Wait (the caller bounds it with ``fail_after``) until ``predicate`` holds."""
        while not predicate(self.lines):
            await self.changed.wait()


def saw(lines: list[str], start: str, text: str) -> bool:
    return any(line.startswith(start) and text in line for line in lines)


@trouper.service("talk")
class Talk(trouper.Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @trouper.rpc
    async def chat(self, prefix: str, channel: trouper.Channel[str, int], times: int = 1) -> None:
        me = self.ctx.node.id
        self.log.contexts.append(trouper.current_call())
        self.log.members.append(self.ctx.self_ref)
        self.log.add(f"opened {prefix} on {me}")
        try:
            async for n in channel:
                for _ in range(times):
                    await channel.send(f"{prefix}{n}@{me}")
        except trouper.ChannelClosed as exc:
            self.log.add(f"closed {prefix}: {exc}")
            raise
        except trio.Cancelled:
            self.log.add(f"cancelled {prefix}")
            raise
        self.log.add(f"ended {prefix}")

    @trouper.rpc
    async def count(self, n: int, channel: trouper.Channel[int, Any]) -> None:
        for i in range(n):
            await channel.send(i)
        if n < 0:
            raise ValueError("negative")

    @trouper.rpc
    async def broken(self, channel: trouper.Channel[int, int], after: int) -> None:
        for i in range(after):
            await channel.send(i)
        raise ValueError("broken on purpose")

    @trouper.rpc
    async def total(self, channel: trouper.Channel[int, int]) -> None:
        """The sum of what the opener sends, once it has closed its side."""
        await channel.send(sum([n async for n in channel]))

    @trouper.rpc
    async def refuse(self, channel: trouper.Channel[int, int], reason: str) -> None:
        """Cancel after the first item: the opener hears the reason."""
        assert await channel.receive() == 1
        channel.cancel(reason)

    @trouper.rpc
    async def ping(self) -> str:
        return "pong"


@trouper.service("guarded", middleware=[trouper.TokenAuth(SECRET)])
class Guarded(trouper.Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @trouper.rpc(roles={"admin"})
    async def console(self, channel: trouper.Channel[str, str]) -> None:
        self.log.add("console")
        async for line in channel:
            await channel.send(line.upper())


@trouper.service("limited", middleware=[trouper.RateLimit(rate=0.01, burst=2)])
class Limited(trouper.Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @trouper.rpc
    async def feed(self, channel: trouper.Channel[str, str]) -> None:
        self.log.add("feed")
        await channel.send("fed")


class Slow(trouper.Middleware):
    async def server(self, call: trouper.CallContext, proceed: Any) -> Any:
        await trio.sleep(10)
        return await proceed()


@trouper.service("slow", middleware=[Slow()])
class SlowToOpen(trouper.Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    @trouper.rpc
    async def talk(self, channel: trouper.Channel[int, int]) -> None:
        self.log.add("talk")


async def open_talk(node: trouper.Node, log: Log, n: int = 1) -> list[trouper.ActorRef]:
    refs = [await node.spawn(Talk, log) for _ in range(n)]
    await node.registry.wait_for_members("talk", n, timeout=5)
    return refs


# ------------------------------------------------------------ on one node


async def test_a_channel_method_converses_through_a_proxy() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await open_talk(node, log)
            talk = node.proxy(Talk, timeout=2.0, metadata={"who": "test"})
            async with talk.chat("n", times=2) as ch:
                await ch.send(1)
                assert [await ch.receive(), await ch.receive()] == [f"n1@{node.id}"] * 2
                await ch.send(2)
                await ch.close()
                assert [x async for x in ch] == [f"n2@{node.id}"] * 2
            await log.until(lambda lines: "ended n" in lines)
            ctx = log.contexts[0]
            assert (ctx.method, ctx.service, ctx.caller, ctx.caller_ref) == (
                "chat",
                "talk",
                node.id,
                None,
            )
            assert ctx.deadline is None  # the timeout bounded the opening only
            assert dict(ctx.metadata) == {"who": "test"}
            assert await talk.ping() == "pong"


class Trace(trouper.Middleware):
    async def client(self, call: trouper.services.ClientCall, proceed: Any) -> Any:
        call.metadata["trace"] = "t-1"
        return await proceed()


@trouper.message
class OpenFor(msgspec.Struct, frozen=True):
    on: trouper.ActorRef | None = None


class Opener(trouper.Actor):
    """An actor that opens a channel method: the method sees it as the caller."""

    @trouper.handler
    async def open_for(self, msg: OpenFor) -> str:
        members = None if msg.on is None else [msg.on]
        talk = self.ctx.node.proxy(Talk, middleware=[Trace()], members=members)
        async with talk.chat("actor") as ch:
            await ch.send(1)
            said: str = await ch.receive()
        return said


async def test_the_caller_and_client_middleware_reach_the_method() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await open_talk(node, log)
            opener = await node.spawn(Opener)
            assert await opener.ask(OpenFor()) == f"actor1@{node.id}"
            (ctx,) = log.contexts
            assert ctx.caller_ref == opener
            assert dict(ctx.metadata) == {"trace": "t-1"}


async def test_the_proxy_balances_channel_opens_over_the_members() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            first, second = await open_talk(node, log, 2)
            talk = node.proxy(Talk, members=[first, second])
            for prefix in "abcd":
                async with talk.chat(prefix) as ch:
                    await ch.send(0)
                    await ch.receive()
            assert log.members == [first, second, first, second]


async def test_the_window_of_a_channel_method_bounds_what_waits_unread() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await open_talk(node, log)
            talk = node.proxy(Talk)
            with pytest.raises(trouper.ConfigurationError, match="window"):
                talk.count(3).window(0)
            async with talk.count(10).window(2) as ch:
                await trio.testing.wait_all_tasks_blocked()
                # The method is stopped at the window (and the opening's answer
                # was taken): two items wait, the third send waits for room.
                assert (ch.window, ch.buffered) == (2, 2)
                assert [x async for x in ch] == list(range(10))


async def test_bad_arguments_fail_the_opening_and_nothing_runs() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            (ref,) = await open_talk(node, log)
            talk = node.proxy(Talk, timeout=2.0)
            with pytest.raises(trouper.InvalidArgument, match="'prefix'"):
                async with talk.chat(5):
                    pytest.fail("opened with a bad argument")
            with pytest.raises(trouper.InvalidArgument, match="'times'"):
                async with talk.chat("x", times="twice"):
                    pytest.fail("opened with a bad argument")
            # Missing or unknown arguments are refused before anything is sent,
            # and the channel is not an argument the caller may pass.
            with pytest.raises(trouper.InvalidArgument, match="missing argument 'prefix'"):
                talk.chat()
            with pytest.raises(trouper.InvalidArgument, match="no parameter 'channel'"):
                talk.chat("x", channel=None)
            # The server checks on its own: bytes that do not fit, or a unary
            # call of a channel method, are refused before the method runs.
            raw = ChannelCall("chat", msgspec.msgpack.encode({"prefix": 1}), node.id)
            async with ref.channel(raw) as ch:
                first = await ch.receive()
            assert isinstance(first, LocalFailure) and not first.ran
            assert isinstance(first.exc, trouper.InvalidArgument)
            assert "'prefix'" in str(first.exc)
            unary = Call("chat", msgspec.msgpack.encode({"prefix": "p"}), node.id, 1)
            answer = await ref.ask(unary, timeout=2)
            assert isinstance(answer, LocalFailure)
            assert "a channel method" in str(answer.exc)
            for_call = ChannelCall("ping", msgspec.msgpack.encode({}), node.id)
            async with ref.channel(for_call) as ch:
                first = await ch.receive()
            assert isinstance(first, LocalFailure)
            assert "not a channel method" in str(first.exc)
            assert log.lines == []


async def test_an_item_of_the_wrong_type_ends_the_channel_before_the_method_sees_it() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await open_talk(node, log)
            talk = node.proxy(Talk)
            async with talk.chat("t") as ch:
                await ch.send("not an int")
                with pytest.raises(trouper.ChannelClosed, match=r"sent a str .* takes int"):
                    await ch.receive()
            await log.until(lambda lines: saw(lines, "closed t", "takes int"))
            assert await talk.ping() == "pong"  # the member carries on


async def test_token_auth_refuses_before_the_channel_opens() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Guarded, log)
            anonymous = node.proxy(Guarded, members=[ref])
            with pytest.raises(trouper.Unauthorized, match="no bearer"):
                async with anonymous.console():
                    pytest.fail("opened without a token")
            reader = trouper.issue_token(SECRET, "ada", roles={"reader"}, ttl=60)
            as_reader = node.proxy(Guarded, metadata=trouper.bearer(reader), members=[ref])
            with pytest.raises(trouper.Unauthorized, match="lacks role 'admin'"):
                async with as_reader.console():
                    pytest.fail("opened without the role")
            assert log.lines == []
            admin = trouper.issue_token(SECRET, "root", roles={"admin"}, ttl=60)
            as_admin = node.proxy(Guarded, metadata=trouper.bearer(admin), members=[ref])
            async with as_admin.console() as ch:
                await ch.send("ls")
                assert await ch.receive() == "LS"
            assert log.lines == ["console"]


async def test_the_rate_limit_applies_before_the_channel_opens() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Limited, log)
            limited = node.proxy(Limited, members=[ref])
            for _ in range(2):
                async with limited.feed() as ch:
                    assert [x async for x in ch] == ["fed"]
            with pytest.raises(trouper.RateLimited) as info:
                async with limited.feed():
                    pytest.fail("opened past the rate limit")
            assert info.value.retry_delay > 0
            assert log.lines == ["feed", "feed"]


async def test_either_side_closes_cancels_or_fails() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await open_talk(node, log)
            talk = node.proxy(Talk)
            # The opener leaves early: the method's iteration ends cleanly.
            async with talk.chat("leave") as ch:
                await ch.send(1)
                assert await ch.receive() == f"leave1@{node.id}"
            await log.until(lambda lines: "ended leave" in lines)
            # The opener cancels: the method hears why.
            async with talk.chat("bye") as ch:
                ch.cancel("changed my mind")
            await log.until(lambda lines: saw(lines, "closed bye", "changed my mind"))
            # The method returns: the opener's iteration ends, and it can send no more.
            async with talk.count(3) as ch:
                assert [x async for x in ch] == [0, 1, 2]
                with pytest.raises(trouper.ChannelClosed):
                    await ch.send(1)
            # The method fails: what it sent first, then its failure; the member lives.
            async with talk.broken(after=2) as ch:
                got = [await ch.receive(), await ch.receive()]
                with pytest.raises(ValueError, match="broken on purpose"):
                    await ch.receive()
            assert got == [0, 1]
            # The opener closes its side and still receives; the method cancels.
            async with talk.total() as ch:
                for n in (1, 2, 3):
                    await ch.send(n)
                await ch.close()
                assert [x async for x in ch] == [6]
            async with talk.refuse("no deal") as ch:
                await ch.send(1)
                with pytest.raises(trouper.ChannelClosed, match="no deal"):
                    await ch.receive()
            # The opener's task is cancelled: the method hears so.
            with trio.CancelScope() as scope:
                async with talk.chat("gone") as ch:
                    await ch.send(1)
                    await ch.receive()
                    scope.cancel()
                    await trio.sleep_forever()
            await log.until(lambda lines: saw(lines, "closed gone", "the other side was cancelled"))
            assert await talk.ping() == "pong"


async def test_the_timeout_bounds_the_opening_not_the_conversation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    async with trouper.open_node() as node:
        await open_talk(node, log)
        talk = node.proxy(Talk, timeout=1.0)
        async with talk.chat("long") as ch:
            for i in range(3):
                await trio.sleep(5.0)  # far past the proxy's timeout
                await ch.send(i)
                assert await ch.receive() == f"long{i}@{node.id}"
        ref = await node.spawn(SlowToOpen, log)
        slow = node.proxy(SlowToOpen, timeout=1.0, members=[ref])
        start = trio.current_time()
        with pytest.raises(trouper.AskTimeout, match=r"did not open within 1\.0s"):
            async with slow.talk():
                pytest.fail("opened past its deadline")
        assert trio.current_time() - start < 5.0
        await trio.sleep(20)  # the server's middleware has long finished
        assert "talk" not in log.lines


async def test_a_dead_member_fails_the_opening() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            (ref,) = await open_talk(node, log)
            await node.stop(ref)
            talk = node.proxy(Talk, members=[ref])
            with pytest.raises(trouper.ActorDead):
                async with talk.chat("x"):
                    pytest.fail("opened on a dead member")


async def test_an_opening_refused_before_it_ran_is_retried_on_another_member() -> None:
    log = Log()
    with trio.fail_after(10):
        async with trouper.open_node(seed=3) as node:
            dead, live = await open_talk(node, log, 2)
            await node.stop(dead)
            retried = node.proxy(Talk, retry=trouper.Retry(attempts=2), members=[dead, live])
            for prefix in "ab":  # round-robin would pick the dead member for one of them
                async with retried.chat(prefix) as ch:
                    await ch.send(1)
                    assert await ch.receive() == f"{prefix}1@{node.id}"
            assert log.members == [live, live]
            once = node.proxy(Talk, members=[dead, live])
            with pytest.raises(trouper.ActorDead):
                for prefix in "cd":  # without retry, the dead member's turn fails
                    async with once.chat(prefix) as ch:
                        await ch.send(1)
                        await ch.receive()


# ------------------------------------------------------------ two nodes


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    listen = "tcp://127.0.0.1:0"
    async with trouper.open_node("a", listen=listen, cookie=COOKIE) as a:  # noqa: SIM117 (b seeds from a)
        async with trouper.open_node("b", listen=listen, cookie=COOKIE, seeds=a.addresses) as b:
            await a.wait_for_members(2, timeout=10)
            await b.wait_for_members(2, timeout=10)
            yield a, b


async def test_channel_methods_across_two_nodes() -> None:
    log = Log()
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            await a.spawn(Talk, log)
            await b.spawn(Talk, log)
            await b.registry.wait_for_members("talk", 2, timeout=5)
            talk = b.proxy(Talk, timeout=5.0)
            where = set()
            for prefix in ("p", "q"):  # round-robin: one on each node
                async with talk.chat(prefix) as ch:
                    await ch.send(7)
                    said = await ch.receive()
                    where.add(said.rsplit("@", 1)[1])
            assert where == {"a", "b"}
            ctx = next(c for c in log.contexts if c.caller == "b" and c.method == "chat")
            assert ctx.deadline is None
            there = b.proxy(
                Talk, members=[r for r in b.registry.members("talk") if r.node_id == "a"]
            )
            with pytest.raises(trouper.InvalidArgument, match="'prefix'"):
                async with there.chat(5):
                    pytest.fail("opened with a bad argument")
            async with there.broken(after=1) as ch:
                assert await ch.receive() == 0
                with pytest.raises(trouper.RemoteError, match="broken on purpose"):
                    await ch.receive()
            async with there.chat("w") as ch:
                await ch.send("wrong")
                with pytest.raises(trouper.ChannelClosed, match="takes int"):
                    await ch.receive()
            async with there.total() as ch:
                await ch.send(4)
                await ch.send(5)
                await ch.close()
                assert [x async for x in ch] == [9]
            async with there.refuse("no deal") as ch:
                await ch.send(1)
                with pytest.raises(trouper.ChannelClosed, match="no deal"):
                    await ch.receive()
            async with there.chat("c") as ch:
                ch.cancel("enough")
            await log.until(lambda lines: saw(lines, "closed c:", "enough"))
            assert log.lines.count("opened p on a") + log.lines.count("opened q on a") == 1
            # The opening actor reaches the method on the other node as a ref.
            opener = await b.spawn(Opener)
            member = next(r for r in b.registry.members("talk") if r.node_id == "a")
            assert await opener.ask(OpenFor(member)) == "actor1@a"
            ctx = next(c for c in log.contexts if c.metadata.get("trace") == "t-1")
            assert ctx.caller == "b" and ctx.caller_ref is not None
            assert (ctx.caller_ref.node_id, ctx.caller_ref.path) == ("b", opener.path)


async def test_auth_refusal_across_nodes() -> None:
    log = Log()
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            await a.spawn(Guarded, log)
            (ref,) = await b.registry.wait_for_members("guarded", 1, timeout=5)
            with pytest.raises(trouper.Unauthorized, match="no bearer"):
                async with b.proxy(Guarded).console():
                    pytest.fail("opened without a token")
            admin = trouper.issue_token(SECRET, "root", roles={"admin"}, ttl=60)
            async with b.proxy(Guarded, metadata=trouper.bearer(admin)).console() as ch:
                await ch.send("ok")
                assert await ch.receive() == "OK"
            assert log.lines == ["console"]
            assert ref.node_id == "a"


async def test_the_members_node_going_down_mid_channel() -> None:
    log = Log()
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            await a.spawn(Talk, log)
            await b.registry.wait_for_members("talk", 1, timeout=5)
            talk = b.proxy(Talk)
            async with talk.chat("down") as ch:
                await ch.send(1)
                assert await ch.receive() == "down1@a"
                remote = a.remote
                assert remote is not None
                await remote.close()  # a leaves the cluster mid-conversation
                with pytest.raises(trouper.ChannelClosed, match=r"NodeDown|ActorDead"):
                    await ch.receive()
                with pytest.raises(trouper.ChannelClosed):
                    await ch.send(2)
