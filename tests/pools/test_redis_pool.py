"""``trouper.pools.redis`` against a real ``redis-server`` (tests/redis_helper.py):
the API, growth under concurrent checkouts, a killed connection found by the
health check, a Redis restart (retryable errors meanwhile, then recovery),
and the one edge that turns coredis errors into ``StoreError``."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode

import coredis
import coredis.exceptions as ce
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import trouper
import trouper.pools
from redis_helper import RedisServer
from trouper._errors import ConfigurationError
from trouper.pools._redis_errors import map_exceptions, translate
from trouper.pools._redis_url import parse_redis_url
from trouper.stores import StoreBusy, StoreError, StoreUnavailable, open_store


def key() -> str:
    return f"t{uuid.uuid4().hex[:12]}"  # tests share the session server: own keys


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of the test's own, which it may kill and start again."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@asynccontextmanager
async def outside(server: RedisServer) -> AsyncIterator[Any]:
    """A plain coredis client, not part of any pool (to inspect and to kill)."""
    async with coredis.Redis(host="127.0.0.1", port=server.port) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout``.

    For states outside the pool (a server's client list) that no event announces.
    """
    with trio.move_on_after(timeout):
        while True:
            if await check():
                return
            await trio.sleep(0.02)
    pytest.fail(f"not within {timeout}s: {what}")


async def test_execute_connection_and_status(redis_server: RedisServer) -> None:
    k = key()
    with trio.fail_after(10):
        async with trouper.pools.redis(redis_server.url, min=2, max=4) as pool:
            assert await pool.execute("SET", k, b"v\x00\xff") == b"OK"
            assert await pool.execute(b"get", k) == b"v\x00\xff"
            async with pool.connection() as r:
                assert await r.incrby(k + ":n", 5) == 5  # the coredis client itself
                held = pool.status()
                assert (held.active, held.idle) == (1, 1)
            status = pool.status()
            assert status.name == f"redis redis://127.0.0.1:{redis_server.port}/0"
            assert (status.size, status.active, status.min, status.max) == (2, 0, 2, 4)


async def test_checkout_timeout_and_drain(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with trouper.pools.redis(redis_server.url, min=1, max=1) as pool:
            async with pool.connection():
                # The server is fine, the pool is busy: PoolTimeout, not StoreUnavailable.
                with pytest.raises(trouper.PoolTimeout) as info:
                    async with pool.connection(timeout=0.05):
                        pass
                assert info.value.is_retryable and not isinstance(info.value, StoreError)
            await pool.drain()
            with pytest.raises(trouper.PoolClosed):
                await pool.execute("PING")
            assert pool.status().size == 0


async def test_the_pool_grows_under_concurrent_checkouts(redis_server: RedisServer) -> None:
    release = trio.Event()
    holding = 0

    async def hold(pool: trouper.pools.RedisPool) -> None:
        nonlocal holding
        async with pool.connection() as r:
            await r.ping()
            holding += 1
            await release.wait()

    with trio.fail_after(10):
        async with (
            trouper.pools.redis(redis_server.url, min=1, max=4) as pool,
            trio.open_nursery() as nursery,
        ):
            for _ in range(4):
                nursery.start_soon(hold, pool)

            async def all_held() -> bool:
                return holding == 4

            await eventually(all_held, "four concurrent checkouts served")
            status = pool.status()
            assert (status.size, status.active, status.max) == (4, 4, 4)
            assert status.expansions >= 1
            release.set()


async def test_each_member_holds_its_own_connection(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with trouper.pools.redis(redis_server.url, min=3, max=3) as pool:
            async with pool.connection() as a, pool.connection() as b, pool.connection() as c:
                ids = {await r.client_id() for r in (a, b, c)}
            assert len(ids) == 3


async def test_a_killed_connection_is_found_by_the_health_check(
    own_server: RedisServer,
) -> None:
    with trio.fail_after(15):
        async with (
            trouper.pools.redis(own_server.url, min=1, max=1, health_every=0.05) as pool,
            outside(own_server) as admin,
        ):
            old = await pool.execute("CLIENT", "ID")
            assert await admin.client_kill(identifier=old) == 1

            async def replaced() -> bool:
                # Nobody uses the pool meanwhile: only the health check's
                # PING can notice the kill and bring a new connection.
                me = await admin.client_id()
                return any(c["id"] not in (old, me) for c in await admin.client_list())

            await eventually(replaced, "the pool reconnected after CLIENT KILL")
            assert await pool.execute("PING") == b"PONG"
            assert await pool.execute("CLIENT", "ID") != old


async def test_the_pool_rides_out_a_redis_restart(own_server: RedisServer) -> None:
    k = key()
    with trio.fail_after(30):
        async with trouper.pools.redis(
            own_server.url, min=1, max=2, checkout_timeout=0.5, command_timeout=0.5
        ) as pool:
            await pool.execute("SET", k, b"1")
            own_server.kill()
            failures: list[BaseException] = []
            for _ in range(3):
                with pytest.raises(StoreError) as info:
                    await pool.execute("GET", k)
                failures.append(info.value)
            own_server.start()

            async def back() -> bool:
                try:
                    return await pool.execute("SET", k, b"2") == b"OK"
                except StoreError as exc:
                    failures.append(exc)
                    return False

            await eventually(back, "the pool works again after the restart")
            assert await pool.execute("GET", k) == b"2"
    # Every error meanwhile said "try again", none was a bare coredis error.
    assert all(isinstance(f, StoreUnavailable) and f.is_retryable for f in failures), failures


async def test_a_store_rides_out_a_redis_restart(own_server: RedisServer) -> None:
    url = own_server.url + "?prefix=restart:&checkout_timeout=0.5&command_timeout=0.5"
    with trio.fail_after(30):
        async with open_store(url) as store:
            assert await store.append("log", b"a") == 1
            own_server.kill()
            with pytest.raises(StoreUnavailable):
                await store.append("log", b"b")
            with pytest.raises(StoreUnavailable):
                await store.get("k")
            own_server.start()  # empty: no persistence in the test server

            async def back() -> bool:
                try:
                    await store.put("k", b"v")
                except StoreUnavailable:
                    return False
                return True

            await eventually(back, "the store works again after the restart")
            assert await store.get("k") == b"v"
            assert await store.append("log", b"c") == 1  # the server lost everything
            assert store.statistics().errors >= 2


async def test_an_unreachable_server_is_retryable_when_opening() -> None:
    with trio.fail_after(10):
        port = RedisServer().port  # a free port nobody listens on
        with pytest.raises(StoreUnavailable) as info:
            async with trouper.pools.redis(f"redis://127.0.0.1:{port}/0", command_timeout=1):
                pass
        assert info.value.is_retryable
        assert f"127.0.0.1:{port}" in str(info.value)


async def test_passwords_from_the_url() -> None:
    with RedisServer(password="s3cret/pw") as server, trio.fail_after(10):
        good = f"redis://:{quote('s3cret/pw', safe='')}@127.0.0.1:{server.port}/0"
        async with trouper.pools.redis(good) as pool:
            assert await pool.execute("PING") == b"PONG"
        bad = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        with pytest.raises(StoreError) as info:
            async with trouper.pools.redis(bad):
                pass
        assert not info.value.is_retryable  # a wrong password stays wrong
        assert "hunter2" not in str(info.value)
        with pytest.raises(StoreError) as missing:
            async with trouper.pools.redis(server.url):  # no password at all
                pass
        assert not missing.value.is_retryable


async def test_command_errors_are_not_retryable_and_keep_the_member(
    redis_server: RedisServer,
) -> None:
    k = key()
    with trio.fail_after(10):
        async with trouper.pools.redis(redis_server.url, min=1, max=1) as pool:
            await pool.execute("SET", k, b"text")
            before = await pool.execute("CLIENT", "ID")
            with pytest.raises(StoreError, match="wrong kind of value") as wrong:
                await pool.execute("LPUSH", k, b"x")
            with pytest.raises(StoreError, match="wrong number of arguments") as syntax:
                await pool.execute("SET", k)
            with pytest.raises(StoreError, match="unknown command") as unknown:
                await pool.execute("NOSUCHCOMMAND")
            for exc in (wrong, syntax, unknown):
                assert type(exc.value) is StoreError and not exc.value.is_retryable
                assert isinstance(exc.value.__cause__, ce.RedisError)
            with pytest.raises(StoreError, match="wrong kind of value"):
                async with pool.connection() as r:
                    await r.lpush(k, ["x"])  # leaves the block translated too
            assert await pool.execute("CLIENT", "ID") == before  # not replaced
            assert pool.status().size == 1


def test_translate_sorts_errors_by_cause() -> None:
    where = "redis://h:1/0"
    cases: list[tuple[BaseException, type[StoreError], bool]] = [
        (ce.ConnectionError("lost"), StoreUnavailable, True),
        (ce.BusyLoadingError("loading"), StoreUnavailable, True),
        (ce.ReadOnlyError("replica"), StoreUnavailable, True),
        (TimeoutError(), StoreUnavailable, True),
        (ConnectionRefusedError(111, "refused"), StoreUnavailable, True),
        (trio.TooSlowError(), StoreUnavailable, True),
        (ce.ResponseError("BUSY Redis is busy running a script"), StoreBusy, True),
        (ce.WrongTypeError("WRONGTYPE"), StoreError, False),
        (ce.ResponseError("ERR syntax error"), StoreError, False),
        (ce.AuthenticationFailureError("WRONGPASS"), StoreError, False),
    ]
    for exc, cls, retryable in cases:
        mapped = translate(exc, where)
        assert type(mapped) is cls, exc
        assert mapped.is_retryable is retryable
        assert str(mapped).startswith(where)
    assert translate(ValueError("x"), where) is None
    assert translate(StoreBusy("ours"), where) is None


def test_map_exceptions_edges() -> None:
    with pytest.raises(StoreUnavailable) as info, map_exceptions("w"):
        raise ExceptionGroup("pool", [ExceptionGroup("conn", [ce.ConnectionError("gone")])])
    assert isinstance(info.value.__cause__, ExceptionGroup)
    with pytest.raises(ValueError), map_exceptions("w"):  # a bug stays a bug
        raise ValueError("x")
    with pytest.raises(StoreBusy), map_exceptions("w"):  # ours passes through
        raise StoreBusy("x")
    with pytest.raises(ExceptionGroup), map_exceptions("w"):  # nothing to translate
        raise ExceptionGroup("g", [KeyError("k")])


async def test_cancellation_is_never_translated(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with trouper.pools.redis(redis_server.url) as pool:
            with trio.move_on_after(0.05) as scope:
                await pool.execute("BLPOP", key(), 5)  # blocks server-side
            assert scope.cancelled_caught
            assert await pool.execute("PING") == b"PONG"


@pytest.mark.parametrize(
    ("url", "kwargs", "match"),
    [
        ("postgres://h/0", {}, "starts with redis://"),
        ("redis://:secret@/0", {}, "names no host"),
        ("redis://:secret@h:99999/0", {}, "bad port"),
        ("redis://:secret@h/-1", {}, "must be >= 0"),
        ("redis://:secret@h/0?max=0", {}, "option max must be >= 1"),
        ("redis://:secret@h/0?command_timeout=nan", {}, "finite number"),
        ("redis://:secret@h/0?bogus=1", {}, "unknown redis URL option 'bogus'"),
        ("redis://:secret@h/0#x", {}, "no #fragment"),
        ("redis://:secret@h/0", {"min": 5, "max": 2}, "min <= max"),
        ("redis://:secret@h/0", {"checkout_timeout": 0}, "checkout_timeout must be"),
        ("redis://:secret@h/0", {"policy": "fast"}, "must be a trouper.PoolPolicy"),
    ],
)
def test_bad_urls_and_options_fail_at_the_call(
    url: str, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        trouper.pools.redis(url, **kwargs)
    assert "secret" not in str(info.value)


def test_url_forms() -> None:
    spec = parse_redis_url("redis://u:p%40ss@db.example:6380/3?prefix=app:&min=2&max=9")
    assert (spec.host, spec.port, spec.db) == ("db.example", 6380, 3)
    assert (spec.username, spec.password, spec.prefix) == ("u", "p@ss", "app:")
    assert (spec.min, spec.max) == (2, 9)
    assert "p@ss" not in repr(spec) and spec.where == "redis://db.example:6380/3"
    default = parse_redis_url("redis://localhost")
    assert (default.port, default.db, default.prefix, default.min) == (
        6379,
        0,
        "trouper:store:",
        None,
    )


def test_importing_trouper_loads_no_coredis() -> None:
    code = "import sys, trouper, trouper.pools, trouper.stores; assert 'coredis' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    port=st.integers(1, 65535),
    db=st.integers(0, 15),
    user=st.none() | st.text(min_size=1, max_size=12),
    password=st.none() | st.text(min_size=1, max_size=12),
    prefix=st.text(max_size=20).filter(lambda p: "\x00" not in p),
    sizes=st.none() | st.tuples(st.integers(0, 8), st.integers(1, 64)),
)
def test_url_round_trip(
    host: str,
    port: int,
    db: int,
    user: str | None,
    password: str | None,
    prefix: str,
    sizes: tuple[int, int] | None,
) -> None:
    """Whatever the URL spells (percent-encoded), parse_redis_url reads back."""
    auth = ""
    if user is not None or password is not None:
        auth = quote(user or "", safe="")
        auth += f":{quote(password, safe='')}" if password is not None else ""
        auth += "@"
    query: dict[str, Any] = {"prefix": prefix}
    if sizes is not None:
        query |= {"min": sizes[0], "max": sizes[1]}
    spec = parse_redis_url(f"redis://{auth}{host}:{port}/{db}?{urlencode(query)}")
    assert (spec.host, spec.port, spec.db, spec.prefix) == (host, port, db, prefix)
    assert (spec.username, spec.password) == (user or None, password)
    assert (spec.min, spec.max) == (sizes or (None, None))
