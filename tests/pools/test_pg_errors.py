"""The psycopg error edge: each failure provoked for real on a PostgreSQL server.

Serialization failures and deadlocks come from two real transactions
racing; the lost connection from ``pg_terminate_backend``; nothing is
raised by hand. Each lands as the right ``StoreError`` subclass with the
right ``is_retryable``, and the pool keeps serving afterwards.
"""

from __future__ import annotations

import pytest
import trio

from pg_helpers import admin, others, wait_until
from trouper.pools import (
    PgPool,
    PgTransaction,
    StoreConflict,
    StoreTimeout,
    TransactionConflict,
    postgres,
)
from trouper.pools._pg_errors import translate
from trouper.stores import InvalidStoreArgument, StoreError, StoreUnavailable
from trouper.stores._errors import StoreError as BaseStoreError


async def expect(pool: PgPool, sql: str, error: type[StoreError], retryable: bool) -> StoreError:
    with pytest.raises(error) as info:
        await pool.execute(sql)
    assert info.value.is_retryable is retryable
    assert info.value.__cause__ is not None  # the driver's error stays reachable for logs
    assert await pool.fetchval("SELECT 1") == 1  # and the pool goes on serving
    return info.value


async def test_statement_errors_are_not_retryable(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            await pool.execute("CREATE TABLE t (a int PRIMARY KEY)")
            await pool.execute("INSERT INTO t VALUES (1)")
            err = await expect(pool, "SELEC 1", StoreError, retryable=False)
            assert type(err) is StoreError and "syntax error" in str(err)  # 42601
            err = await expect(pool, "SELECT * FROM missing", StoreError, retryable=False)
            assert type(err) is StoreError and "missing" in str(err)  # 42P01
            err = await expect(pool, "INSERT INTO t VALUES (1)", StoreConflict, retryable=False)
            assert err.error_code == "store-conflict"  # 23505


async def test_placeholder_mismatch_is_the_callers_bug(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            with pytest.raises(InvalidStoreArgument) as info:
                await pool.fetchval("SELECT %s, %s", 1)
            assert isinstance(info.value, ValueError) and not info.value.is_retryable


async def test_statement_timeout_is_retryable(postgres_url: str) -> None:
    with trio.fail_after(20):
        async with postgres(postgres_url) as pool:
            with pytest.raises(StoreTimeout) as info:
                async with pool.transaction() as tx:
                    await tx.execute("SET LOCAL statement_timeout = '50ms'")
                    await tx.execute("SELECT pg_sleep(5)")  # 57014
            assert info.value.is_retryable and isinstance(info.value, TimeoutError)
            assert await pool.fetchval("SELECT 1") == 1


async def _race(
    pool: PgPool, first: str, second: str, setup: str, isolation: str
) -> list[BaseException]:
    """Two transactions that each run ``setup`` then wait for the other, then
    run ``first``/``second``: one of them must lose."""
    errors: list[BaseException] = []
    ready = [trio.Event(), trio.Event()]

    async def side(i: int, sql: str) -> None:
        try:
            async with pool.transaction(isolation=isolation) as tx:
                await _prepare(tx, setup)
                ready[i].set()
                await ready[1 - i].wait()
                await tx.execute(sql)
        except StoreError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, 0, first)
        nursery.start_soon(side, 1, second)
    return errors


async def _prepare(tx: PgTransaction, setup: str) -> None:
    for statement in setup.split(";"):
        if statement.strip():
            await tx.execute(statement)


async def test_serialization_failure_is_retryable(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with postgres(postgres_url, min=2, max=2) as pool:
            await pool.execute("CREATE TABLE t (k int, v int)")
            await pool.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
            # write skew: each reads both rows, then updates the row the other read
            errors = await _race(
                pool,
                "UPDATE t SET v = 1 WHERE k = 1",
                "UPDATE t SET v = 1 WHERE k = 2",
                "SELECT sum(v) FROM t",
                isolation="serializable",
            )
            assert len(errors) == 1, errors
            assert isinstance(errors[0], TransactionConflict)  # 40001
            assert errors[0].is_retryable and "serialize" in str(errors[0])


async def test_deadlock_is_retryable(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with postgres(postgres_url, min=2, max=2) as pool:
            await pool.execute("CREATE TABLE t (k int PRIMARY KEY, v int)")
            await pool.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
            errors: list[BaseException] = []
            locked = [trio.Event(), trio.Event()]

            async def side(i: int) -> None:
                mine, theirs = (1, 2) if i == 0 else (2, 1)
                try:
                    async with pool.transaction() as tx:
                        await tx.execute("SET LOCAL deadlock_timeout = '50ms'")
                        await tx.execute("UPDATE t SET v = v + 1 WHERE k = %s", mine)
                        locked[i].set()
                        await locked[1 - i].wait()
                        await tx.execute("UPDATE t SET v = v + 1 WHERE k = %s", theirs)
                except StoreError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, 0)
                nursery.start_soon(side, 1)
            assert len(errors) == 1, errors
            assert isinstance(errors[0], TransactionConflict) and errors[0].is_retryable  # 40P01
            assert "deadlock" in str(errors[0])


async def test_connection_terminated_mid_query_is_retryable(postgres_url: str) -> None:
    with trio.fail_after(30):
        async with postgres(postgres_url, min=1, max=1) as pool:
            victim = await pool.fetchval("SELECT pg_backend_pid()")
            caught: list[StoreError] = []

            async def query() -> None:
                with pytest.raises(StoreUnavailable) as info:
                    await pool.fetchval("SELECT pg_sleep(30)")
                caught.append(info.value)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(query)

                async def sleeping() -> bool:
                    return any("pg_sleep" in q for _, _, q in await others(postgres_url))

                await wait_until(sleeping)
                await admin(postgres_url, "SELECT pg_terminate_backend(%s)", victim)  # 57P01
            assert caught[0].is_retryable
            # the broken connection was replaced, not lent again
            assert await pool.fetchval("SELECT pg_backend_pid()") != victim


async def test_unreachable_server_is_retryable(postgres_url: str) -> None:
    from servers import free_port

    url = f"postgresql://trouper@127.0.0.1:{free_port()}/nothing"
    with trio.fail_after(20), pytest.raises(StoreUnavailable) as info:
        async with postgres(url, connect_timeout=2):
            pass
    assert info.value.is_retryable and "127.0.0.1" in str(info.value)


def test_other_driver_errors_default_to_not_retryable() -> None:
    import psycopg

    error = translate(psycopg.DataError("bad data"), "postgres x")
    assert type(error) is BaseStoreError and not error.is_retryable
    assert isinstance(translate(psycopg.OperationalError("gone"), "x"), StoreUnavailable)
