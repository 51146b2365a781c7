"""Proxies under failure: failover without duplicate effects, the retry
budget, circuit breakers, token authentication and the rate limit."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trouper
from trouper.services import BREAKER_TOPIC
from trouper.services._messages import Call

SECRET = "a-test-secret-of-enough-bytes"
NO_WAIT = trouper.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class Refuse(trouper.Middleware):
    """Refuses every call before it runs, retryably, and counts attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    async def server(self, call: trouper.CallContext, proceed: Any) -> Any:
        self.attempts += 1
        raise trouper.RateLimited("refused for the test", retry_delay=0.0)


REFUSE = Refuse()


@trouper.service("counter")
class Counter(trouper.Actor):
    def __init__(self) -> None:
        self.effects = 0
        self.flaky = False

    @trouper.rpc
    async def add(self, n: int) -> int:
        self.effects += n
        return self.effects

    @trouper.rpc
    async def flake(self) -> str:
        if self.flaky:
            raise trouper.ConnectionLost("flaky for the test")
        return "ok"


@trouper.service("refusing", middleware=[REFUSE])
class Refusing(trouper.Actor):
    @trouper.rpc
    async def work(self) -> None:
        raise AssertionError("never runs")


@trouper.service("guarded", middleware=[trouper.TokenAuth(SECRET)])
class Guarded(trouper.Actor):
    @trouper.rpc
    async def read(self) -> str:
        return trouper.current_call().metadata["authorization"][:7]

    @trouper.rpc(roles={"admin"})
    async def wipe(self) -> str:
        return "wiped"


@trouper.service("open")
class Unguarded(trouper.Actor):
    @trouper.rpc(roles={"admin"})
    async def wipe(self) -> str:
        return "wiped"


@trouper.service("limited", middleware=[trouper.RateLimit(rate=1.0, burst=2)])
class Limited(trouper.Actor):
    def __init__(self) -> None:
        self.ran = 0

    @trouper.rpc
    async def hit(self) -> int:
        self.ran += 1
        return self.ran


def actor_of(ref: trouper.ActorRef) -> Any:
    from trouper.runtime import cell_of

    cell = cell_of(ref)
    assert cell is not None
    return cell.instance


async def test_a_non_idempotent_call_fails_over_only_when_it_never_ran() -> None:
    with trio.fail_after(10):
        async with trouper.open_node(seed=1) as node:
            gone = await node.spawn(Counter)
            live = await node.spawn(Counter)
            await node.stop(gone)
            proxy = node.proxy(
                Counter, retry=trouper.Retry(attempts=3, backoff=NO_WAIT), members=[gone, live]
            )
            for _ in range(4):
                await proxy.add(1)  # a dead member proves nothing ran: the call goes on
            assert actor_of(live).effects == 4


async def test_a_retry_of_the_same_logical_call_is_deduplicated() -> None:
    import msgspec

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter)
            args = msgspec.msgpack.encode({"n": 5})
            first = await ref.ask(Call("add", args, node.id, 1, key=77))
            again = await ref.ask(Call("add", args, node.id, 2, key=77))
            assert first == again == 5
            assert actor_of(ref).effects == 5
            assert await ref.ask(Call("add", args, node.id, 3, key=78)) == 10


async def test_a_non_idempotent_call_that_may_have_run_is_not_retried() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            a = await node.spawn(Counter)
            b = await node.spawn(Counter)
            actor_of(a).flaky = actor_of(b).flaky = True
            proxy = node.proxy(
                Counter,
                retry=trouper.Retry(attempts=5, backoff=NO_WAIT),
                breaker=trouper.Breaker(failures=100),
                members=[a, b],
            )
            # ConnectionLost after the method ran: only the same member may
            # be asked again (same key, deduplicated), so it fails once.
            with pytest.raises(trouper.ConnectionLost):
                await proxy.flake()


async def test_the_retry_budget_caps_retries() -> None:
    with trio.fail_after(30):
        async with trouper.open_node(seed=2) as node:
            refs = [await node.spawn(Refusing) for _ in range(2)]
            proxy = node.proxy(
                Refusing,
                retry=trouper.Retry(attempts=5, backoff=NO_WAIT, budget=0.1),
                breaker=trouper.Breaker(failures=10**6),
                members=refs,
            )
            REFUSE.attempts = 0
            calls = 400
            for _ in range(calls):
                with pytest.raises(trouper.RateLimited):
                    await proxy.work()
            retries = REFUSE.attempts - calls
            # Unbounded, it would be 4 retries a call (1600). The budget allows
            # 10% of calls plus a floor of 10/s over its 10 s window.
            assert 100 <= retries <= 0.1 * calls + 100 + 1


async def test_breaker_opens_then_lets_one_probe_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node() as node:
        ref = await node.spawn(Counter)
        actor_of(ref).flaky = True
        proxy = node.proxy(
            Counter, breaker=trouper.Breaker(failures=2, reset_after=1.0), members=[ref]
        )
        async with node.subscribe(BREAKER_TOPIC) as events:
            for _ in range(2):
                with pytest.raises(trouper.ConnectionLost):
                    await proxy.flake()
            with pytest.raises(trouper.CircuitOpen) as info:
                await proxy.flake()
            assert info.value.is_retryable and info.value.retry_delay == pytest.approx(1.0)
            await trio.sleep(1.0)
            with pytest.raises(trouper.ConnectionLost):
                await proxy.flake()  # the probe failed: open again
            await trio.sleep(1.0)
            actor_of(ref).flaky = False
            assert await proxy.flake() == "ok"  # the probe succeeded: closed
            assert await proxy.flake() == "ok"
            seen = [(e.old, e.new) for e in [events.receive_nowait() for _ in range(5)]]
        assert seen == [
            ("closed", "open"),
            ("open", "half-open"),
            ("half-open", "open"),
            ("open", "half-open"),
            ("half-open", "closed"),
        ]


async def test_token_authentication_and_roles() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Guarded)
            anonymous = node.proxy(Guarded, members=[ref])
            with pytest.raises(trouper.Unauthorized, match="no bearer"):
                await anonymous.read()
            reader = trouper.issue_token(SECRET, "ada", roles={"reader"}, ttl=60)
            as_reader = node.proxy(Guarded, metadata=trouper.bearer(reader), members=[ref])
            assert await as_reader.read() == "Bearer "
            with pytest.raises(trouper.Unauthorized, match="lacks role 'admin'"):
                await as_reader.wipe()
            admin = trouper.issue_token(SECRET, "root", roles={"admin"}, ttl=60)
            assert await node.proxy(Guarded, metadata=trouper.bearer(admin), members=[ref]).wipe()
            old = trouper.issue_token(SECRET, "ada", roles={"admin"}, ttl=1, now=1000.0)
            with pytest.raises(trouper.Unauthorized, match="expired"):
                await node.proxy(Guarded, metadata=trouper.bearer(old), members=[ref]).wipe()
            forged = trouper.issue_token("another-secret-of-16-bytes", "eve", roles={"admin"})
            with pytest.raises(trouper.Unauthorized, match="signature"):
                await node.proxy(Guarded, metadata=trouper.bearer(forged), members=[ref]).wipe()
            unguarded = await node.spawn(Unguarded)
            with pytest.raises(trouper.Unauthorized, match="no TokenAuth"):
                await node.proxy(Unguarded, members=[unguarded]).wipe()


async def test_the_rate_limit_refuses_with_a_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node() as node:
        ref = await node.spawn(Limited)
        proxy = node.proxy(Limited, members=[ref])
        assert [await proxy.hit(), await proxy.hit()] == [1, 2]
        with pytest.raises(trouper.RateLimited) as info:
            await proxy.hit()
        assert info.value.is_retryable and info.value.retry_delay == pytest.approx(1.0)
        assert actor_of(ref).ran == 2
        await trio.sleep(info.value.retry_delay)
        assert await proxy.hit() == 3


class Stamp(trouper.Middleware):
    """Client side: adds metadata; server side: records what it saw."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def client(self, call: trouper.services.ClientCall, proceed: Any) -> Any:
        call.metadata["tenant"] = "acme"
        self.log.append(f"client {call.method}")
        return await proceed()

    async def server(self, call: trouper.CallContext, proceed: Any) -> Any:
        self.log.append(f"server {call.method} {call.metadata.get('tenant')}")
        result = await proceed()
        self.log.append(f"server done {result}")
        return result


async def test_node_and_proxy_middleware_chains(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    log: list[str] = []
    caplog.set_level(logging.INFO, "trouper.services")
    with trio.fail_after(10):
        async with trouper.open_node(middleware=[Stamp(log)]) as node:
            ref = await node.spawn(Counter)
            proxy = node.proxy(Counter, members=[ref], middleware=[trouper.LoggingMiddleware()])
            assert await proxy.add(2) == 2
    assert log == ["client add", "server add acme", "server done 2"]
    assert any("called counter.add: ok" in r.getMessage() for r in caplog.records)


async def test_the_server_checks_metadata_bounds_too() -> None:
    import msgspec

    from trouper.services._messages import LocalFailure

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter)
            args = msgspec.msgpack.encode({"n": 1})
            big = {"k": "v" * 5000}
            out = await ref.ask(Call("add", args, node.id, 1, metadata=big))
            assert isinstance(out, LocalFailure) and isinstance(out.exc, trouper.InvalidArgument)
            assert actor_of(ref).effects == 0


@trouper.service("sharded")
class Sharded(trouper.Actor):
    @trouper.rpc
    async def put(self, account: str, amount: int = 1) -> str:
        return self.ctx.self_ref.path


async def test_consistent_hashing_sends_a_key_to_the_same_member() -> None:
    with trio.fail_after(10):
        async with trouper.open_node("shards") as node:  # a fixed id: a fixed ring
            refs = [await node.spawn(Sharded) for _ in range(4)]
            proxy = node.proxy(Sharded, balance=trouper.ConsistentHash(key="account"))
            where = {a: await proxy.put(a) for a in ("ada", "bob", "cy", "dee", "eve")}
            for a, path in where.items():
                assert await proxy.put(a, amount=5) == path
                assert await proxy.put(account=a) == path
            assert len(set(where.values())) > 1
            assert set(where.values()) <= {r.path for r in refs}
            with pytest.raises(AttributeError, match="no rpc method 'nope'"):
                proxy.nope  # noqa: B018


async def test_an_open_breaker_sends_calls_to_the_other_members(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node() as node:
        flaky, healthy = await node.spawn(Counter), await node.spawn(Counter)
        actor_of(flaky).flaky = True
        proxy = node.proxy(
            Counter,
            retry=trouper.Retry(attempts=2, backoff=NO_WAIT),
            breaker=trouper.Breaker(failures=2, reset_after=10.0),
            members=[flaky, healthy],
        )
        outcomes = []
        for _ in range(10):
            try:
                outcomes.append(await proxy.flake())
            except trouper.ConnectionLost:
                outcomes.append("lost")
        # The first call meets the flaky member, which may have run it: it is
        # asked once more under the same key (2 failures: the breaker opens),
        # then the call fails. Every later call goes to the healthy member.
        assert outcomes == ["lost"] + ["ok"] * 9


async def test_the_dedup_window_and_the_running_table_are_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    import msgspec

    from trouper.services._state import DEDUP_WINDOW, services_of

    async with trouper.open_node() as node:
        ref = await node.spawn(Counter)
        args = msgspec.msgpack.encode({"n": 1})
        assert await ref.ask(Call("add", args, node.id, 1, key=5)) == 1
        assert await ref.ask(Call("add", args, node.id, 2, key=5)) == 1  # deduplicated
        await trio.sleep(DEDUP_WINDOW + 1)
        assert await ref.ask(Call("add", args, node.id, 3, key=5)) == 2  # forgotten: runs
        state = services_of(node)
        assert len(state.dedup) == 1 and not state.running


async def test_cancelled_calls_leave_nothing_behind() -> None:
    from trouper.services._state import services_of

    with trio.fail_after(10):
        async with trouper.open_node() as node:
            refs = [await node.spawn(Counter) for _ in range(3)]
            proxy = node.proxy(Counter, timeout=None, members=refs)
            async with trio.open_nursery() as nursery:
                for i in range(300):
                    nursery.start_soon(proxy.add, i)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            state = services_of(node)
            assert not state.running
            assert len(state.early_cancels) <= 300
            assert await proxy.add(0) >= 0  # the members carry on


async def test_a_retry_of_the_only_member_heeds_its_retry_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node() as node:
        ref = await node.spawn(Limited)
        proxy = node.proxy(
            Limited, timeout=10.0, retry=trouper.Retry(attempts=2, backoff=NO_WAIT), members=[ref]
        )
        assert [await proxy.hit(), await proxy.hit()] == [1, 2]
        start = trio.current_time()
        assert await proxy.hit() == 3  # refused, retried after the bucket's delay
        assert trio.current_time() - start == pytest.approx(1.0, abs=0.01)


async def test_a_success_between_failures_keeps_the_breaker_closed() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            ref = await node.spawn(Counter)
            proxy = node.proxy(Counter, breaker=trouper.Breaker(failures=2), members=[ref])
            for _ in range(3):
                actor_of(ref).flaky = True
                with pytest.raises(trouper.ConnectionLost):
                    await proxy.flake()
                actor_of(ref).flaky = False
                assert await proxy.flake() == "ok"  # resets the count: never 2 in a row
            actor_of(ref).flaky = True
            for _ in range(2):
                with pytest.raises(trouper.ConnectionLost):
                    await proxy.flake()
            with pytest.raises(trouper.CircuitOpen):
                await proxy.flake()
