"""Worker pools size themselves (autojump clock), and their ref works from
another node over real TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper.pools import pool_status

COOKIE = b"pool-test-cookie"


@trouper.message
class Work(msgspec.Struct):
    n: int


class Slow(trouper.Actor):
    """~10 ms of "I/O" per message; counts what every worker handled."""

    def __init__(self, done: list[int]) -> None:
        self.done = done

    @trouper.handler
    async def work(self, msg: Work) -> int:
        await trio.sleep(0.01)
        self.done.append(msg.n)
        return msg.n

    @trouper.handler
    async def numbers(self, msg: int) -> AsyncIterator[int]:
        for i in range(msg):
            yield i


async def _poll_status(pool: trouper.ActorRef, ok: object) -> trouper.PoolStatus:
    """Poll the pool's status until ``ok(status)`` (the caller's fail_after bounds it)."""
    while True:
        status = await pool_status(pool)
        if ok(status):  # type: ignore[operator]
            return status
        await trio.sleep(0.05)


async def test_a_burst_grows_the_pool_and_the_quiet_shrinks_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: list[int] = []
    policy = trouper.PoolPolicy(min=1, max=8, shrink_after=2.0)
    with trio.fail_after(120):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Slow, done, policy=policy)
            peak = 0
            async with trio.open_nursery() as nursery:
                for i in range(400):
                    nursery.start_soon(pool.ask, Work(i))
                while len(done) < 400:
                    peak = max(peak, (await pool_status(pool)).size)
                    await trio.sleep(0.02)
            assert sorted(done) == list(range(400))
            grown = await pool_status(pool)
            assert grown.expansions >= 2 and peak > 2
            assert grown.size <= 8

            # A trickle while the quiet period shrinks the pool: every
            # message is still answered (a worker leaves only when idle).
            answered = []
            for i in range(400, 440):
                answered.append(await pool.ask(Work(i)))
                await trio.sleep(0.25)
            assert answered == list(range(400, 440))
            small = await _poll_status(pool, lambda s: s.size == 1)
            assert small.shrinks >= 1 and small.expansions == grown.expansions
            assert len(done) == 440


async def test_the_pool_never_grows_past_max(autojump_clock: trio.testing.MockClock) -> None:
    done: list[int] = []
    policy = trouper.PoolPolicy(min=2, max=3)
    with trio.fail_after(60):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Slow, done, policy=policy)
            async with trio.open_nursery() as nursery:
                for i in range(300):
                    nursery.start_soon(pool.ask, Work(i))
                while len(done) < 300:
                    assert (await pool_status(pool)).size <= 3
                    await trio.sleep(0.02)
            status = await pool_status(pool)
            assert status.size == 3 and status.expansions == 1


async def test_a_fixed_pool_stays_fixed(autojump_clock: trio.testing.MockClock) -> None:
    done: list[int] = []
    with trio.fail_after(60):
        async with trouper.open_node() as node:
            pool = await node.spawn_pool(Slow, done, min=2, max=2)
            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(pool.ask, Work(i))
            status = await pool_status(pool)
            assert (status.size, status.expansions, status.shrinks) == (2, 0, 0)


async def test_a_pool_ref_works_from_another_node() -> None:
    done: list[int] = []
    with trio.fail_after(30):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            trouper.open_node(
                "b", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE
            ) as b,
        ):
            await a.wait_for_members(2, timeout=10)
            await b.wait_for_members(2, timeout=10)
            await a.spawn_pool(Slow, done, min=2, max=4, name="work")
            pool = await b.lookup("work", timeout=5)
            assert pool.node_id == "a"
            assert [await pool.ask(Work(i)) for i in range(6)] == list(range(6))
            for i in range(6, 10):
                await pool.tell(Work(i))
            status = await _poll_status(pool, lambda s: s.active == 0 and len(done) == 10)
            assert status.name == "work" and status.size >= 2
            assert sorted(done) == list(range(10))
            with pytest.raises(trouper.UnhandledMessage, match="no handler for float"):
                await pool.ask(3.5)  # no worker handles a float: that ask fails alone
            assert await pool.ask(Work(11)) == 11
            async with pool.stream(20, window=4) as items:
                assert [i async for i in items] == list(range(20))
