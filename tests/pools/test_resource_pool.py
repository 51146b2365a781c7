"""ResourcePool: lending, growth, timeouts, discards, leaks, health, shrink, drain.

The members are plain objects counted by a small factory (the pool's own code
is what is under test); time is trio's autojump clock, so the 5 ms growth
threshold and the five-minute quiet period run instantly and exactly.
"""

from __future__ import annotations

import logging
import random

import pytest
import trio
import trio.testing

import trouper
from trouper.pools import PoolPolicy
from trouper.pools._resource import ResourcePool, open_resource_pool


class Factory:
    def __init__(self, fail_open: bool = False) -> None:
        self.opened = 0
        self.closed: list[int] = []
        self.fail_open = fail_open
        self.unhealthy: set[int] = set()

    async def open(self) -> int:
        await trio.sleep(0.001)  # opening takes time, as a connect does
        if self.fail_open:
            raise ConnectionRefusedError("no server")
        self.opened += 1
        return self.opened

    async def close(self, member: int) -> None:
        self.closed.append(member)

    async def check(self, member: int) -> None:
        if member in self.unhealthy:
            raise ConnectionResetError(f"member {member} is dead")

    @property
    def live(self) -> int:
        return self.opened - len(self.closed)


def pool_of(factory: Factory, **kwargs: object) -> object:
    kwargs.setdefault("policy", PoolPolicy(min=2, max=8))
    return open_resource_pool(
        "test", open=factory.open, close=factory.close, check=factory.check, **kwargs
    )


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_opens_min_lends_and_takes_back(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    async with pool_of(factory) as pool:
        assert pool.status().size == 2 and pool.status().idle == 2
        async with pool.checkout() as member:
            assert member in (1, 2)
            status = pool.status()
            assert (status.active, status.idle, status.utilisation) == (1, 1, 0.5)
        assert pool.status().active == 0
    assert sorted(factory.closed) == [1, 2]


async def test_waiting_past_5ms_grows_the_pool_by_the_policy(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    async with pool_of(factory) as pool:
        release = trio.Event()

        async def hold() -> None:
            async with pool.checkout():
                await release.wait()

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(hold)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.05)
            status = pool.status()
            assert status.expansions >= 1
            assert status.size == 4  # x2.0 below half of max
            assert status.active == 3 and status.waiters == 0
            release.set()


async def test_a_full_pool_times_out_with_a_retryable_error(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    async with pool_of(factory, policy=PoolPolicy(min=1, max=1)) as pool, pool.checkout():
        with pytest.raises(trouper.PoolTimeout) as info:
            async with pool.checkout(timeout=0.5):
                pass  # pragma: no cover
        assert info.value.is_retryable
        assert "'test'" in str(info.value) and "max 1" in str(info.value)
        assert pool.status().waiters == 0


async def test_cancelled_or_broken_checkouts_discard_their_member(
    clock: trio.testing.MockClock,
) -> None:
    factory = Factory()
    async with pool_of(factory, is_broken=lambda exc: isinstance(exc, ConnectionError)) as pool:
        with trio.move_on_after(0.1):
            async with pool.checkout() as first:
                await trio.sleep(1)
        await trio.testing.wait_all_tasks_blocked()
        assert first in factory.closed  # left mid-use: not lent again
        with pytest.raises(ConnectionResetError):
            async with pool.checkout() as second:
                raise ConnectionResetError
        await trio.testing.wait_all_tasks_blocked()
        assert second in factory.closed
        with pytest.raises(KeyError):
            async with pool.checkout() as third:
                raise KeyError("the caller's own bug")
        assert third not in factory.closed  # the member itself is fine
        await trio.sleep(0.1)
        assert pool.status().size >= 2  # refilled to min


async def test_a_leaked_checkout_is_logged_with_its_stack_and_reclaimed(
    clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    factory = Factory()
    caplog.set_level(logging.WARNING, logger="trouper.pools")
    async with pool_of(factory, leak_after=10.0) as pool:

        async def forgetful_caller() -> None:
            async with pool.checkout():
                await trio.sleep_forever()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(forgetful_caller)
            await trio.sleep(15)
            assert pool.status().active == 0
            assert len(factory.closed) == 1
            nursery.cancel_scope.cancel()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "reclaimed" in text and "forgetful_caller" in text


async def test_an_unhealthy_idle_member_is_replaced(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    async with pool_of(factory, health_every=5.0) as pool:
        factory.unhealthy.add(1)
        await trio.sleep(12)
        assert 1 in factory.closed
        assert pool.status().size == 2 and 2 not in factory.closed


async def test_quiet_pool_shrinks_after_the_quiet_period(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    policy = PoolPolicy(min=1, max=8, shrink_after=60.0)
    async with pool_of(factory, policy=policy, health_every=None) as pool:
        release = trio.Event()

        async def hold() -> None:
            async with pool.checkout():
                await release.wait()

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(hold)
            await trio.sleep(0.5)
            assert pool.status().size >= 4
            release.set()
        await trio.sleep(2)  # the last growth decisions under load have been made
        grown = pool.status().size
        await trio.sleep(30)
        assert pool.status().size == grown  # not yet: the quiet period is 60 s
        await trio.sleep(100)
        status = pool.status()
        assert status.size == 1 and status.shrinks >= 1


async def test_drain_waits_for_active_then_refuses(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    pool: ResourcePool[int] = ResourcePool(
        "drained", open=factory.open, close=factory.close, policy=PoolPolicy(min=2, max=4)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        returned = trio.Event()

        async def slow_user() -> None:
            async with pool.checkout():
                await trio.sleep(3)
            returned.set()

        nursery.start_soon(slow_user)
        await trio.testing.wait_all_tasks_blocked()
        await pool.drain(timeout=10)
        assert returned.is_set() and factory.live == 0
        with pytest.raises(trouper.PoolClosed):
            async with pool.checkout():
                pass  # pragma: no cover


async def test_a_failure_to_open_at_start_is_raised_at_start(
    clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(ConnectionRefusedError):
        async with pool_of(Factory(fail_open=True)):
            pass  # pragma: no cover


async def test_bad_settings_are_refused() -> None:
    factory = Factory()
    with pytest.raises(trouper.ConfigurationError, match="checkout_timeout"):
        ResourcePool("x", open=factory.open, close=factory.close, checkout_timeout=0)
    with pytest.raises(trouper.ConfigurationError, match="min <= max"):
        PoolPolicy(min=5, max=2)


async def test_random_holds_and_cancels_lose_no_member(clock: trio.testing.MockClock) -> None:
    """Seeded chaos: every member ever opened is either live in the pool or
    closed, never lost, whatever mix of holds, timeouts and cancels."""
    rng = random.Random(1234)
    factory = Factory()
    async with pool_of(factory, policy=PoolPolicy(min=1, max=6), checkout_timeout=0.05) as pool:

        async def user() -> None:
            with trio.move_on_after(rng.uniform(0.0, 0.2)):
                try:
                    async with pool.checkout():
                        await trio.sleep(rng.uniform(0.0, 0.1))
                except trouper.PoolTimeout:
                    pass

        async with trio.open_nursery() as nursery:
            for _ in range(300):
                nursery.start_soon(user)
                await trio.sleep(rng.uniform(0.0, 0.005))
        await trio.sleep(1)
        status = pool.status()
        assert status.active == 0 and status.waiters == 0
        assert factory.live == status.size
        assert status.size <= 6
    assert factory.live == 0


async def test_an_error_of_the_block_comes_out_as_itself(clock: trio.testing.MockClock) -> None:
    factory = Factory()
    with pytest.raises(KeyError, match="the block's own"):
        async with pool_of(factory):
            raise KeyError("the block's own")
    assert factory.live == 0  # drained and closed on the way out


async def test_cancelling_the_pool_with_a_member_out_does_not_stall_its_exit(
    clock: trio.testing.MockClock,
) -> None:
    # The pool's owner and a holder are cancelled together (an actor stopping
    # with its store in use): the pool's task closes every member first, and
    # the holder gives its member back only after that. The exit must not
    # wait out the drain timeout for a return that was already accounted for.
    factory = Factory()
    holding = trio.Event()

    async def holder(pool: ResourcePool[int]) -> None:
        async with pool.checkout():
            holding.set()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.5)  # the return comes after the pool's close

    async def owner() -> None:
        async with pool_of(factory, drain_timeout=30.0) as pool:
            nursery.start_soon(holder, pool)
            await trio.sleep_forever()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(owner)
        await holding.wait()
        nursery.cancel_scope.cancel()
    assert sorted(factory.closed) == [1, 2]
    assert trio.current_time() - start < 5.0, "the exit waited for the drain timeout"
