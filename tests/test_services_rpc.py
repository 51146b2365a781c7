"""Typed RPC: @service/@rpc, proxies, bad arguments, deadlines, cancellation,
metadata, on one node and across two real nodes over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import trio
import trio.testing

import trouper

COOKIE = b"services-cookie"


class Entry(msgspec.Struct, frozen=True):
    account: str
    amount: int


@trouper.service("accounts")
class Accounts(trouper.Actor):
    def __init__(self) -> None:
        self.balances: dict[str, int] = {}
        self.ran = 0
        self.started = trio.Event()
        self.cancelled = trio.Event()
        self.seen: list[trouper.CallContext] = []

    @trouper.rpc
    async def deposit(self, account: str, amount: int) -> int:
        self.ran += 1
        self.balances[account] = self.balances.get(account, 0) + amount
        return self.balances[account]

    @trouper.rpc(idempotent=True)
    async def balance(self, account: str) -> int:
        self.seen.append(trouper.current_call())
        return self.balances.get(account, 0)

    @trouper.rpc
    async def slow(self, seconds: float) -> str:
        self.started.set()
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            self.cancelled.set()
            raise
        return "done"

    @trouper.rpc
    async def boom(self) -> None:
        raise ValueError("boom")

    @trouper.rpc
    async def history(self, account: str, n: int = 3) -> AsyncIterator[Entry]:
        for i in range(n):
            yield Entry(account, i)


def instance(ref: trouper.ActorRef) -> Accounts:
    from trouper.runtime import cell_of

    cell = cell_of(ref)
    assert cell is not None
    actor = cell.instance
    assert isinstance(actor, Accounts)
    return actor


async def test_a_proxy_calls_the_service_with_typed_arguments() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            accounts = node.proxy(Accounts, timeout=2.0, members=[ref])
            assert await accounts.deposit("ada", 10) == 10
            assert await accounts.deposit(account="ada", amount=5) == 15
            assert await accounts.balance("ada") == 15
            ctx = instance(ref).seen[-1]
            assert ctx.method == "balance" and ctx.caller == node.id
            assert ctx.deadline is not None and ctx.service == "accounts"
            assert Accounts.__trouper_group__ == "accounts"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        (("ada", "ten"), {}, "'amount'"),
        ((1, 10), {}, "'account'"),
        (("ada",), {}, "'amount'"),
        (("ada", 1, 2), {}, "takes 2"),
        (("ada", 1), {"extra": 1}, "'extra'"),
    ],
)
async def test_bad_arguments_fail_that_call_and_nothing_runs(
    args: tuple[object, ...], kwargs: dict[str, object], needle: str
) -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            accounts = node.proxy(Accounts, members=[ref])
            with pytest.raises(trouper.InvalidArgument, match=needle):
                await accounts.deposit(*args, **kwargs)
            assert instance(ref).ran == 0
            assert await accounts.deposit("ada", 1) == 1  # the member carries on


async def test_the_server_refuses_bytes_that_do_not_fit_the_method() -> None:
    from trouper.services._messages import Call, LocalFailure

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            bad = msgspec.msgpack.encode({"account": "ada", "amount": "x"})
            out = await ref.ask(Call("deposit", bad, node.id, 1))
            assert isinstance(out, LocalFailure) and not out.ran
            assert isinstance(out.exc, trouper.InvalidArgument)
            assert "'amount'" in str(out.exc)
            out = await ref.ask(Call("nope", b"\x80", node.id, 2))
            assert isinstance(out, LocalFailure) and "nope" in str(out.exc)
            assert instance(ref).ran == 0


async def test_a_failing_method_fails_the_call_not_the_member() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            accounts = node.proxy(Accounts, members=[ref])
            with pytest.raises(ValueError, match="boom"):
                await accounts.boom()
            assert await accounts.deposit("ada", 2) == 2
            assert node.stats().restarts == 0


async def test_the_handler_runs_under_the_callers_deadline() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            accounts = node.proxy(Accounts, timeout=0.2, members=[ref])
            with pytest.raises(trouper.AskTimeout):
                await accounts.slow(30.0)
            await instance(ref).cancelled.wait()  # the server's own scope ended it


async def test_a_cancelled_caller_cancels_the_local_server_work() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            accounts = node.proxy(Accounts, timeout=None, members=[ref])
            actor = instance(ref)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(accounts.slow, 30.0)
                await actor.started.wait()
                nursery.cancel_scope.cancel()
            await actor.cancelled.wait()
            assert await accounts.deposit("ada", 1) == 1


async def test_metadata_is_bounded_on_the_client() -> None:
    async with trouper.open_node() as node:
        with pytest.raises(trouper.InvalidArgument, match="entries"):
            node.proxy(Accounts, metadata={str(i): "v" for i in range(17)})
        with pytest.raises(trouper.InvalidArgument, match="chars"):
            node.proxy(Accounts, metadata={"k": "v" * 2000})


async def test_a_server_stream_with_flow_control() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Accounts)
            accounts = node.proxy(Accounts, members=[ref])
            async with accounts.history("ada", 4) as entries:  # type: ignore[attr-defined]
                got = [e async for e in entries]
            assert got == [Entry("ada", i) for i in range(4)]
            assert [e.amount async for e in accounts.history("bob")] == [0, 1, 2]
            with pytest.raises(trouper.InvalidArgument, match="'n'"):
                async for _ in accounts.history("bob", "x"):  # type: ignore[arg-type]
                    pass


# ------------------------------------------------------------- two nodes


@asynccontextmanager
async def two_nodes(
    listen: str = "tcp://127.0.0.1:0", **options: object
) -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    async with trouper.open_node("a", listen=listen, cookie=COOKIE, **options) as a:  # noqa: SIM117 (b seeds from a)
        async with trouper.open_node(
            "b", listen=listen, cookie=COOKIE, seeds=a.addresses, **options
        ) as b:
            await a.wait_for_members(2, timeout=10)
            await b.wait_for_members(2, timeout=10)
            yield a, b


async def test_a_remote_call_and_a_remote_bad_argument() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            ref = await a.spawn(Accounts)
            a.registry.register("acc", ref)
            there = await b.lookup("acc", timeout=5)
            accounts = b.proxy(Accounts, timeout=5.0, members=[there])
            assert await accounts.deposit("ada", 7) == 7
            with pytest.raises(trouper.InvalidArgument, match="'amount'"):
                await accounts.deposit("ada", "seven")
            with pytest.raises(trouper.RemoteError, match="boom"):
                await accounts.boom()
            assert [e.amount async for e in accounts.history("ada", 2)] == [0, 1]
            assert instance(ref).ran == 1


async def test_a_cancelled_caller_cancels_the_work_on_another_node() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            ref = await a.spawn(Accounts)
            a.registry.register("acc", ref)
            there = await b.lookup("acc", timeout=5)
            accounts = b.proxy(Accounts, timeout=None, members=[there])
            assert await accounts.deposit("x", 1) == 1  # the services actor of a is up
            from trouper.services._state import services_name

            await b.lookup(services_name("a"), timeout=5)
            actor = instance(ref)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(accounts.slow, 60.0)
                await actor.started.wait()
                nursery.cancel_scope.cancel()
            await actor.cancelled.wait()


async def test_deadline_exceeded_on_the_server_of_another_node() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            ref = await a.spawn(Accounts)
            a.registry.register("acc", ref)
            there = await b.lookup("acc", timeout=5)
            accounts = b.proxy(Accounts, timeout=0.3, members=[there])
            with pytest.raises(trouper.AskTimeout):
                await accounts.slow(60.0)
            await instance(ref).cancelled.wait()


async def test_calls_and_cancels_over_websocket_links() -> None:
    with trio.fail_after(30):
        async with two_nodes("ws://127.0.0.1:0/trouper") as (a, b):
            ref = await a.spawn(Accounts)
            a.registry.register("acc", ref)
            there = await b.lookup("acc", timeout=5)
            accounts = b.proxy(Accounts, timeout=None, members=[there])
            assert await accounts.deposit("ada", 3) == 3
            from trouper.services._state import services_name

            await b.lookup(services_name("a"), timeout=5)
            actor = instance(ref)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(accounts.slow, 60.0)
                await actor.started.wait()
                nursery.cancel_scope.cancel()
            await actor.cancelled.wait()


async def test_a_call_fails_over_to_a_member_on_another_node_without_duplicates() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            here = await b.spawn(Accounts)
            far = await a.spawn(Accounts)
            a.registry.register("far", far)
            far_ref = await b.lookup("far", timeout=5)
            await b.stop(here)
            accounts = b.proxy(
                Accounts,
                retry=trouper.Retry(attempts=2, backoff=trouper.Backoff(0.0, 0.0, 0.0)),
                members=[here, far_ref],
            )
            for i in range(1, 5):
                assert await accounts.deposit("ada", 1) == i
            assert instance(far).ran == 4


async def test_a_proxy_balances_over_the_group_across_nodes() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            mine = await b.spawn(Accounts)
            theirs = [await a.spawn(Accounts) for _ in range(2)]
            members = await b.registry.wait_for_members("accounts", 3, timeout=5)
            assert members[0] == mine
            accounts = b.proxy(Accounts, balance="round-robin")
            for _ in range(6):
                await accounts.deposit("ada", 1)
            assert [instance(r).ran for r in [mine, *theirs]] == [2, 2, 2]
            local = b.proxy(Accounts, balance="local-first")
            for _ in range(3):
                await local.deposit("bob", 1)
            assert instance(mine).ran == 5


@trouper.service("feed")
class Feed(trouper.Actor):
    def __init__(self) -> None:
        self.produced = 0

    @trouper.rpc
    async def items(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            self.produced += 1
            yield i


@trouper.service("ticker")
class Ticker(trouper.Actor):
    @trouper.rpc
    async def ticks(self) -> AsyncIterator[int]:
        yield 0
        await trio.sleep_forever()
        yield 1


async def test_a_server_stream_runs_under_the_proxys_deadline() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            await node.spawn(Ticker)
            ticker = node.proxy(Ticker, timeout=0.2)
            got: list[int] = []
            with pytest.raises(trouper.AskTimeout, match="deadline"):
                async for tick in ticker.ticks():
                    got.append(tick)
            assert got == [0]
            assert node.stats().restarts == 0


async def test_a_server_stream_is_flow_controlled_end_to_end() -> None:
    from trouper.runtime import cell_of

    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            ref = await a.spawn(Feed)
            await b.registry.wait_for_members("feed", 1, timeout=5)
            cell = cell_of(ref)
            assert cell is not None
            feed = cell.instance
            assert isinstance(feed, Feed)
            proxy = b.proxy(Feed, timeout=None)
            async with proxy.items(10_000) as items:  # type: ignore[attr-defined]
                first = await items.__anext__()
                assert first == 0
                # The producer stops at the consumer's credit (a window of 16,
                # plus what is in flight), not at 10,000.
                for _ in range(50):
                    await trio.testing.wait_all_tasks_blocked()
                    await trio.sleep(0.001)
                assert 1 <= feed.produced <= 64
                rest = [x async for x in items]
            assert rest == list(range(1, 10_000))


class Note(msgspec.Struct, frozen=True):
    text: str


@trouper.service("notifier")
class Notifier(trouper.Actor):
    @trouper.rpc
    async def notify(self, to: trouper.ActorRef, text: str) -> bool:
        await to.tell(Note(text))
        return True


class Inbox(trouper.Actor):
    def __init__(self, out: trio.MemorySendChannel[str]) -> None:
        self.out = out

    @trouper.handler
    async def note(self, msg: Note) -> None:
        await self.out.send(msg.text)


async def test_a_ref_is_an_argument_like_any_other_across_nodes() -> None:
    send, receive = trio.open_memory_channel[str](10)
    with trio.fail_after(20):
        async with two_nodes() as (a, b):
            await a.spawn(Notifier)
            inbox = await b.spawn(Inbox, send)
            await b.registry.wait_for_members("notifier", 1, timeout=5)
            assert await b.proxy(Notifier).notify(inbox, "hello")
            assert await receive.receive() == "hello"
            with pytest.raises(trouper.InvalidArgument, match="'to'"):
                await b.proxy(Notifier).notify("not a ref", "x")  # type: ignore[arg-type]


async def test_proxies_are_cheap_no_io_no_task_no_connection() -> None:
    with trio.fail_after(20):
        async with two_nodes() as (_, b):
            before = (b.stats(), len(b.members()), len(b.registry.names()))
            proxies = [b.proxy(Accounts, timeout=1.0) for _ in range(1_000)]
            after = (b.stats(), len(b.members()), len(b.registry.names()))
            assert before == after  # no actor, task, timer, name or link was made
            assert len({id(p) for p in proxies}) == 1_000


async def test_a_slow_consumer_past_the_deadline_ends_the_stream_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node() as node:
        ref = await node.spawn(Feed)
        proxy = node.proxy(Feed, timeout=0.5)
        got: list[int] = []
        with pytest.raises(trouper.AskTimeout, match="deadline"):
            async with proxy.items(1000) as items:  # type: ignore[attr-defined]
                async for i in items:
                    got.append(i)
                    await trio.sleep(0.1)  # the producer waits for credit meanwhile
        assert 0 < len(got) < 1000
        assert node.stats().restarts == 0
        assert [i async for i in node.proxy(Feed, timeout=5.0).items(3)] == [0, 1, 2]
        assert ref in node.registry.members("feed")
