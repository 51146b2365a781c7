"""``trouper.pools.redis(url)``: a sized pool of Redis connections.

Each member is a coredis client holding exactly one connection
(``max_connections=1``), so a checkout owns its connection: a ``MULTI``,
``WATCH`` or script sequence cannot interleave with another task's commands.
The pool around the members is the shared ``ResourcePool``: it grows and
shrinks them with the one ``PoolPolicy``, PINGs idle members
(``health_every``), and replaces a member whose block failed with a
connection error (``StoreUnavailable``).

coredis runs on Trio natively (through anyio, no thread): a coredis client
is an async context manager that owns a task group, which Trio requires to
be entered and left by the same task. The pool may open a member in one
task and close it in another, so each member lives in its own task in the
pool's member nursery: ``open`` starts that task and returns once the client
has connected and answered PING, ``close`` tells it to leave and waits.

Errors leave the pool as ``StoreError`` subclasses (``_redis_errors``):
connection lost and timeouts are the retryable ``StoreUnavailable``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs
import trio

from trouper._errors import ConfigurationError
from trouper.stores._errors import StoreUnavailable

from ._policy import PoolPolicy, PoolStatus
from ._redis_errors import map_exceptions
from ._resource import ResourcePool, open_resource_pool

__all__ = ["RedisPool", "RedisSpec", "parse_redis_url", "redis"]

log = logging.getLogger("trouper.pools")

#: Query options a ``redis://`` URL may carry (the store reads ``prefix``).
URL_OPTIONS = ("prefix", "min", "max")


@attrs.frozen
class RedisSpec:
    """What a ``redis://`` URL names. ``where`` omits the password (for messages)."""

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    prefix: str = "trouper:"
    min: int | None = None
    max: int | None = None

    @property
    def where(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def _int_option(what: str, text: str, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"redis URL {what} {text!r} is not an integer") from None
    if value < lowest:
        raise ConfigurationError(f"redis URL {what} must be >= {lowest}, got {value}")
    return value


def parse_redis_url(url: str) -> RedisSpec:
    """``redis://[user[:password]@]host[:port][/db][?prefix=P&min=N&max=N]``.

    Raises ``ConfigurationError`` naming the problem (never echoing the
    password).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a redis URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() != "redis":
        raise ConfigurationError(
            "a redis URL starts with redis:// (TLS, rediss://, is not supported)"
        )
    try:
        host, port = parts.hostname, parts.port or 6379
    except ValueError:
        raise ConfigurationError("redis URL has a bad port") from None
    if not host:
        raise ConfigurationError("redis URL names no host: use redis://host:port/db")
    path = parts.path.strip("/")
    db = _int_option("db (the path)", path, 0) if path else 0
    if parts.fragment:
        raise ConfigurationError("redis URL takes no #fragment")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name not in URL_OPTIONS:
            known = ", ".join(URL_OPTIONS)
            raise ConfigurationError(f"unknown redis URL option {name!r}; known: {known}")
        options[name] = value
    spec = RedisSpec(
        host=host,
        port=port,
        db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        prefix=options.get("prefix", "trouper:"),
        min=_int_option("option min", options["min"], 0) if "min" in options else None,
        max=_int_option("option max", options["max"], 1) if "max" in options else None,
    )
    if "\x00" in spec.prefix:
        raise ConfigurationError("redis URL option prefix must not contain NUL characters")
    return spec


@attrs.define(eq=False)
class _Member:
    """One coredis client and the task that owns it."""

    client: Any = None
    stop: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)


def _is_broken(exc: BaseException) -> bool:
    """A member whose block failed this way is closed instead of reused."""
    return isinstance(exc, StoreUnavailable)


class RedisPool:
    """Connections to one Redis server. Open it with ``trouper.pools.redis(url)``.

    ``async with pool.connection() as r:`` checks out a coredis client (one
    connection, yours until the block ends); ``await pool.execute("GET",
    "k")`` runs one command on any member.
    """

    def __init__(self, spec: RedisSpec, command_timeout: float) -> None:
        self.spec = spec
        self.command_timeout = command_timeout
        self._resources: ResourcePool[_Member] | None = None
        self._members: trio.Nursery | None = None

    @property
    def _pool(self) -> ResourcePool[_Member]:
        assert self._resources is not None, (
            "RedisPool is used before trouper.pools.redis() opened it"
        )
        return self._resources

    async def _open(self) -> _Member:
        assert self._members is not None
        member = _Member()
        await self._members.start(self._run_member, member)
        return member

    async def _run_member(
        self, member: _Member, *, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        import coredis
        from coredis.retry import NoRetryPolicy

        spec = self.spec
        client = coredis.Redis(
            host=spec.host,
            port=spec.port,
            db=spec.db,
            username=spec.username,
            password=spec.password,
            max_connections=1,
            connect_timeout=self.command_timeout,
            stream_timeout=self.command_timeout,
            # No silent resend: a retried INCR or XADD would be applied twice.
            retry_policy=NoRetryPolicy(),
        )
        started = False
        try:
            with map_exceptions(spec.where):
                async with client:
                    with trio.fail_after(self.command_timeout):
                        await client.ping()  # connect now: an unreachable server fails open()
                    member.client = client
                    task_status.started()
                    started = True
                    await member.stop.wait()
        except Exception as exc:
            if not started:
                raise  # to the opener, through nursery.start()
            # Leaving the client failed (its connection already broke): the
            # member is gone either way, and the pool must not die of it.
            log.debug("%s: a pool member closed with an error: %s", spec.where, exc)
        finally:
            member.done.set()

    async def _close(self, member: _Member) -> None:
        member.stop.set()
        await member.done.wait()

    async def _check(self, member: _Member) -> None:
        with map_exceptions(self.spec.where), trio.fail_after(self.command_timeout):
            await member.client.ping()

    @asynccontextmanager
    async def _connection(self, timeout: float | None) -> AsyncIterator[Any]:
        async with self._pool.checkout(timeout) as member:
            with map_exceptions(self.spec.where):
                yield member.client

    def connection(self, timeout: float | None = None) -> AbstractAsyncContextManager[Any]:
        """Check out a member's coredis client for the block.

        Waits up to ``timeout`` (default: the pool's ``checkout_timeout``)
        and raises ``trouper.PoolTimeout`` after it. coredis errors raised
        in the block leave it as ``StoreError`` subclasses; after a
        connection error the member is replaced, not reused.
        """
        return self._connection(timeout)

    async def execute(self, command: str | bytes, *args: Any, timeout: float | None = None) -> Any:
        """Run one command (``await pool.execute("SET", "k", b"v")``); the raw reply."""
        from coredis.response._callbacks import NoopCallback

        name = command.encode() if isinstance(command, str) else command
        async with self.connection(timeout) as client:
            return await client.create_request(name.upper(), *args, callback=NoopCallback())

    def status(self) -> PoolStatus:
        """A snapshot of the pool's size and use."""
        return self._pool.status()

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new checkouts, wait up to ``timeout`` for those under way, close all."""
        await self._pool.drain(timeout)


def _positive(name: str, value: float | None) -> None:
    if value is not None and not 0 < value < math.inf:  # also refuses NaN
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")


@asynccontextmanager
async def _open_pool(
    spec: RedisSpec, name: str, policy: PoolPolicy, command_timeout: float, **pool_options: Any
) -> AsyncIterator[RedisPool]:
    pool = RedisPool(spec, command_timeout)
    async with trio.open_nursery() as members:
        pool._members = members
        try:
            async with open_resource_pool(
                name,
                open=pool._open,
                close=pool._close,
                check=pool._check,
                is_broken=_is_broken,
                policy=policy,
                **pool_options,
            ) as resources:
                pool._resources = resources
                yield pool
        finally:
            members.cancel_scope.cancel()  # the resource pool has closed every member


def redis(
    url: str,
    *,
    min: int | None = None,
    max: int | None = None,
    checkout_timeout: float = 5.0,
    command_timeout: float = 5.0,
    health_every: float | None = 30.0,
    leak_after: float | None = None,
    policy: PoolPolicy | None = None,
    name: str | None = None,
) -> AbstractAsyncContextManager[RedisPool]:
    """A pool of connections to the Redis server at ``url``; drained on exit.

    ``min``/``max`` (default: the URL's ``min``/``max`` options, else 1 and
    16) bound the pool; ``policy`` gives every other sizing threshold (its
    own min/max are replaced by these). ``command_timeout`` bounds
    connecting and each reply. A bad URL or option raises
    ``ConfigurationError`` here, not when entered; an unreachable server
    raises the retryable ``StoreUnavailable`` when entered (if ``min`` > 0).
    """
    spec = parse_redis_url(url)
    for option, value in (
        ("checkout_timeout", checkout_timeout),
        ("command_timeout", command_timeout),
    ):
        _positive(option, value)
    _positive("health_every", health_every)
    low = min if min is not None else spec.min if spec.min is not None else 1
    high = max if max is not None else spec.max if spec.max is not None else 16
    base = policy if policy is not None else PoolPolicy()
    if not isinstance(base, PoolPolicy):
        raise ConfigurationError(f"policy must be a trouper.PoolPolicy, not {type(base).__name__}")
    sized = attrs.evolve(base, min=low, max=high)  # validates min <= max
    return _open_pool(
        spec,
        name or f"redis {spec.where}",
        sized,
        command_timeout,
        checkout_timeout=checkout_timeout,
        health_every=health_every,
        leak_after=leak_after,
    )
