"""trouper.pools.postgres against a real PostgreSQL (tests/servers.py).

Queries, transactions (commit, rollback on error and on cancellation),
server-side cancellation of an abandoned query, checkout timeout, leak
reclaim, health checks replacing a connection killed on the server, drain,
growth under load, and recovery after the server is killed and restarted.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import msgspec
import pytest
import trio

import trouper
from pg_helpers import admin, others, wait_until
from servers import PostgresServer
from trouper.pools import PoolPolicy, postgres, postgres_pool
from trouper.stores import StoreError, StoreUnavailable


async def test_queries_with_server_side_parameters(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            assert await pool.execute("CREATE TABLE t (a int, b text)") == -1
            assert (
                await pool.execute("INSERT INTO t VALUES (%s, %s), (%s, %s)", 1, "x", 2, "y'") == 2
            )
            assert await pool.fetch("SELECT a, b FROM t ORDER BY a") == [(1, "x"), (2, "y'")]
            assert await pool.fetchrow("SELECT b FROM t WHERE a = %s", 2) == ("y'",)
            assert await pool.fetchrow("SELECT b FROM t WHERE a = %s", 3) is None
            assert await pool.fetchval("SELECT count(*) FROM t WHERE b LIKE %s", "%") == 2
            assert await pool.fetchval("SELECT b FROM t WHERE a = 9") is None
            # a hostile value is a parameter, never SQL
            assert await pool.fetchval("SELECT %s::text", "'; DROP TABLE t; --") == (
                "'; DROP TABLE t; --"
            )
            assert await pool.fetchval("SELECT count(*) FROM t") == 2


async def test_transaction_commits_and_rolls_back_on_error(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            await pool.execute("CREATE TABLE t (a int)")
            async with pool.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                assert await tx.fetchval("SELECT count(*) FROM t") == 1
            with pytest.raises(KeyError):
                async with pool.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (2)")
                    raise KeyError("boom")
            assert await pool.fetch("SELECT a FROM t") == [(1,)]
            with pytest.raises(StoreError, match=r"closed|ended"):
                await tx.execute("INSERT INTO t VALUES (3)")


async def test_failed_statement_inside_transaction_is_not_silently_committed(
    postgres_url: str,
) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            await pool.execute("CREATE TABLE t (a int PRIMARY KEY)")
            with pytest.raises(StoreError, match="rolled back"):
                async with pool.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (1)")
                    with pytest.raises(trouper.pools.StoreConflict):
                        await tx.execute("INSERT INTO t VALUES (1)")
            assert await pool.fetch("SELECT a FROM t") == []


async def test_cancelled_transaction_rolls_back_and_query_is_cancelled_on_server(
    postgres_url: str,
) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url, min=1, max=2) as pool:
            await pool.execute("CREATE TABLE t (a int)")
            running = trio.Event()

            async def stuck() -> None:
                async with pool.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (1)")
                    running.set()
                    await tx.execute("SELECT pg_sleep(60)")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(stuck)
                await running.wait()

                async def sleeping() -> bool:
                    return any(
                        "pg_sleep" in q and s == "active" for _, s, q in await others(postgres_url)
                    )

                await wait_until(sleeping)
                nursery.cancel_scope.cancel()

            # the statement does not go on running on the server ...
            async def gone() -> bool:
                return not any(
                    "pg_sleep" in q and s == "active" for _, s, q in await others(postgres_url)
                )

            await wait_until(gone)
            # ... the insert was rolled back, and the pool still serves
            assert await pool.fetchval("SELECT count(*) FROM t") == 0


async def test_cancelled_call_discards_its_connection(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url, min=1, max=1) as pool:
            first = await pool.fetchval("SELECT pg_backend_pid()")
            with trio.move_on_after(0.2):
                await pool.fetchval("SELECT pg_sleep(60)")
            # the next call gets a fresh connection: a late cancel request can
            # never hit it, and it answers immediately
            assert await pool.fetchval("SELECT pg_backend_pid()") != first
            assert await pool.fetchval("SELECT 1") == 1


async def test_checkout_timeout(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url, min=1, max=1, checkout_timeout=0.3) as pool:
            async with pool.transaction():
                with pytest.raises(trouper.PoolTimeout) as info:
                    await pool.fetchval("SELECT 1")
                assert info.value.is_retryable
                with pytest.raises(trouper.PoolTimeout):
                    async with pool.transaction(timeout=0.05):
                        pass
            assert await pool.fetchval("SELECT 1") == 1


async def test_leaked_checkout_is_logged_with_its_stack_and_reclaimed(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trouper.pools")
    with trio.fail_after(20):
        async with postgres(postgres_url, min=1, max=1, leak_after=0.3) as pool:
            holding, release = trio.Event(), trio.Event()

            async def forgetful_holder() -> None:
                with pytest.raises(StoreUnavailable):  # its connection was taken back
                    async with pool.transaction() as tx:
                        await tx.fetchval("SELECT 1")
                        holding.set()
                        await release.wait()
                        await tx.fetchval("SELECT 1")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(forgetful_holder)
                await holding.wait()
                # the only connection is held: this call gets one after the reclaim
                assert await pool.fetchval("SELECT 2") == 2
                release.set()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "reclaimed" in text and "forgetful_holder" in text


async def test_reclaimed_leak_has_its_running_statement_cancelled(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with postgres(postgres_url, min=1, max=1, leak_after=0.3) as pool:

            async def stuck_holder() -> None:
                with pytest.raises(StoreError) as info:
                    async with pool.transaction() as tx:
                        await tx.execute("SELECT pg_sleep(60)")
                assert info.value.is_retryable

            async with trio.open_nursery() as nursery:
                nursery.start_soon(stuck_holder)

                async def sleeping() -> bool:
                    return any("pg_sleep" in q for _, _, q in await others(postgres_url))

                await wait_until(sleeping)
                # the reclaim closes the connection and stops the statement on the server
                assert await pool.fetchval("SELECT 2") == 2

                async def stopped() -> bool:
                    return not await sleeping()

                await wait_until(stopped)


async def test_health_check_replaces_a_connection_killed_on_the_server(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with postgres(postgres_url, min=1, max=1, health_every=0.1) as pool:
            victim = await pool.fetchval("SELECT pg_backend_pid()")
            assert await admin(postgres_url, "SELECT pg_terminate_backend(%s)", victim) == [(True,)]

            async def replaced() -> bool:
                pids = [pid for pid, _, _ in await others(postgres_url)]
                return len(pids) == 1 and pids[0] != victim

            await wait_until(replaced)  # without any call: the idle check found it dead
            assert await pool.fetchval("SELECT pg_backend_pid()") not in (None, victim)


async def test_drain_waits_for_active_calls_then_closes_everything(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url, min=2, max=2) as pool:
            finished = []
            started = trio.Event()

            async def slow() -> None:
                async with pool.transaction() as tx:
                    started.set()
                    await tx.fetchval("SELECT pg_sleep(0.3)")
                finished.append(True)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                await started.wait()
                await pool.drain(timeout=10)
                assert finished == [True]  # it was allowed to complete
            with pytest.raises(trouper.PoolClosed):
                await pool.fetchval("SELECT 1")

            async def none_left() -> bool:
                return await others(postgres_url) == []

            await wait_until(none_left)


async def test_grows_under_load(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with postgres(postgres_url, policy=PoolPolicy(min=1, max=8)) as pool:
            async with trio.open_nursery() as nursery:
                for _ in range(16):
                    nursery.start_soon(pool.fetchval, "SELECT pg_sleep(0.2)")
            status = pool.status()
            assert status.expansions > 0
            assert 1 < status.size <= 8
            assert status.active == 0 and status.waiters == 0


async def test_bad_arguments_are_refused_clearly(postgres_url: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match="policy"):
        postgres(postgres_url, min=1, policy=PoolPolicy())
    with pytest.raises(trouper.ConfigurationError, match="URL"):
        postgres("postgresql://host:notaport/db x=y=z")
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            with pytest.raises(trouper.stores.InvalidStoreArgument, match="placeholder"):
                await pool.fetchval("SELECT $1", 1)  # only %s placeholders
            assert await pool.fetchval("SELECT 1") == 1  # the offender only
        with pytest.raises(KeyError):  # the block's own exception, not a group
            async with postgres(postgres_url):
                raise KeyError("mine")


async def test_recovers_after_the_server_is_killed_and_restarted() -> None:
    with PostgresServer() as server, trio.fail_after(60):
        url = server.create_database()
        async with postgres(url, min=2, max=4, health_every=0.2) as pool:
            assert await pool.fetchval("SELECT 1") == 1
            await trio.to_thread.run_sync(server.kill)
            with pytest.raises(StoreError) as info:
                await pool.fetchval("SELECT 1")
            assert info.value.is_retryable
            await trio.to_thread.run_sync(server.start)

            async def answers() -> bool:
                try:
                    return bool(await pool.fetchval("SELECT 1") == 1)
                except StoreError as exc:
                    assert exc.is_retryable, exc
                    return False

            await wait_until(answers, timeout=30)
            # every connection left in the pool works again
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(pool.fetchval, "SELECT pg_sleep(0.05)")


def test_importing_trouper_loads_no_psycopg() -> None:
    code = "import sys, trouper, trouper.pools, trouper.stores; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_a_slow_query_never_blocks_the_loop(postgres_url: str) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    with trio.fail_after(20):
        async with postgres(postgres_url, min=2, max=2) as pool:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ticker)
                await trio.lowlevel.checkpoint()
                before = ticks
                # two statements at once on two connections (two threads)
                async with trio.open_nursery() as calls:
                    for _ in range(2):
                        calls.start_soon(pool.fetchval, "SELECT pg_sleep(0.3)")
                nursery.cancel_scope.cancel()
            assert ticks - before > 100


async def test_url_options_size_the_pool_and_the_rest_goes_to_libpq(postgres_url: str) -> None:
    url = postgres_url + "?min=2&max=3&checkout_timeout=0.5&application_name=orders"
    with trio.fail_after(20):
        async with postgres(url) as pool:
            status = pool.status()
            assert (status.min, status.max, status.size) == (2, 3, 2)
            assert await pool.fetchval("SELECT current_setting('application_name')") == "orders"
        async with postgres(url, max=4) as pool:  # an argument wins over the URL
            assert pool.status().max == 4
    for bad, name in [("?max=lots", "max"), ("?checkout_timeout=soon", "checkout_timeout")]:
        with pytest.raises(trouper.ConfigurationError, match=name):
            postgres("postgresql://u:secret@h/d" + bad)
    with pytest.raises(trouper.ConfigurationError, match="leak_after"):
        postgres(postgres_url, leak_after=0)


async def test_transaction_isolation_and_read_only(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            with pytest.raises(trouper.ConfigurationError, match="isolation"):
                pool.transaction(isolation="chaos; DROP TABLE x")  # refused at the call
            async with pool.transaction(isolation="serializable", read_only=True) as tx:
                assert await tx.fetchval("SHOW transaction_isolation") == "serializable"
                assert await tx.fetchval("SHOW transaction_read_only") == "on"
            with pytest.raises(StoreError, match="read-only"):
                async with pool.transaction(read_only=True) as tx:
                    await tx.execute("CREATE TABLE t (a int)")
            assert await pool.fetchval("SHOW transaction_isolation") == "read committed"


class Total(msgspec.Struct, frozen=True):
    user_id: int


class Orders(trouper.Actor):
    """An actor that hosts its own pool: it runs in the actor's nursery."""

    def __init__(self, url: str) -> None:
        self.db = postgres_pool(url, min=1, max=4)

    async def on_start(self) -> None:
        self.ctx.start_soon(self.db.run)

    @trouper.handler
    async def total(self, msg: Total) -> int:
        value = await self.db.fetchval("SELECT %s::int * 10", msg.user_id)
        return int(value)


async def test_a_pool_hosted_by_an_actor_lives_and_dies_with_it(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            orders = await node.spawn(Orders, postgres_url)
            assert await orders.ask(Total(7)) == 70

            async def connected() -> bool:
                return len(await others(postgres_url)) >= 1

            await wait_until(connected)
            await node.stop(orders)

            async def none_left() -> bool:
                return await others(postgres_url) == []

            await wait_until(none_left)  # the actor's stop closed the pool
