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
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

from trouper._errors import ConfigurationError
from trouper.stores._errors import StoreError, StoreUnavailable

from ._policy import PoolPolicy, PoolStatus
from ._redis_errors import map_exceptions
from ._redis_url import RedisSpec, parse_redis_url, positive
from ._resource import ResourcePool, open_resource_pool

__all__ = ["RedisPool", "redis"]

log = logging.getLogger("trouper.pools")

T = TypeVar("T")


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
        #: Why the last attempt to open a member failed (None: it succeeded).
        self._open_failure: StoreError | None = None

    @property
    def _pool(self) -> ResourcePool[_Member]:
        assert self._resources is not None, (
            "RedisPool is used before trouper.pools.redis() opened it"
        )
        return self._resources

    async def _open(self) -> _Member:
        assert self._members is not None
        member = _Member()
        try:
            await self._members.start(self._run_member, member)
        except StoreError as exc:
            self._open_failure = exc
            raise
        self._open_failure = None
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
        if member.done.is_set():
            raise StoreUnavailable(f"{self.spec.where}: this connection has closed")
        with map_exceptions(self.spec.where), trio.fail_after(self.command_timeout):
            await member.client.ping()

    @asynccontextmanager
    async def _connection(self, timeout: float | None) -> AsyncIterator[Any]:
        # The resource pool discards a member whose block was cancelled (a
        # blocking command such as BLPOP cut mid-reply leaves coredis's one
        # connection unusable) or failed with StoreUnavailable (is_broken).
        where = self.spec.where
        checked_out = False
        try:
            async with self._pool.checkout(timeout) as member:
                checked_out = True
                if member.done.is_set():  # its client is gone: the pool discards it
                    raise StoreUnavailable(f"{where}: this connection has closed")
                with map_exceptions(where):
                    yield member.client
        except TimeoutError as exc:
            # No member in time because the server cannot be reached: say so
            # (retryable) rather than blame a busy pool.
            failure = self._open_failure
            if checked_out or isinstance(exc, StoreError) or failure is None:
                raise
            raise StoreUnavailable(f"{where}: unreachable ({failure})") from exc

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


@asynccontextmanager
async def _open_pool(
    spec: RedisSpec, name: str, policy: PoolPolicy, command_timeout: float, **pool_options: Any
) -> AsyncIterator[RedisPool]:
    """The pool in its two nurseries (members, and the resource pool's own).

    As with ``open_node``: an exception from the body comes out unwrapped, as
    if the nurseries were not there, and so does a lone ``StoreError`` from
    opening (``StoreUnavailable``: the server is unreachable); anything else
    comes out as the ``BaseExceptionGroup`` Trio made.
    """
    pool = RedisPool(spec, command_timeout)
    body: list[BaseException] = []
    try:
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
                    try:
                        yield pool
                    except BaseException as exc:
                        body.append(exc)
                        raise
            finally:
                members.cancel_scope.cancel()  # the resource pool has closed every member
    except BaseExceptionGroup as group:
        leaf = _sole(group)
        if leaf is None or not (leaf in body or (not body and isinstance(leaf, StoreError))):
            raise
        try:
            raise leaf
        finally:
            del leaf, body


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside nested one-member groups, or None."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


def _first(given: T | None, from_url: T | None, default: T) -> T:
    """An argument wins over the URL's option, which wins over the default."""
    return given if given is not None else from_url if from_url is not None else default


def redis(
    url: str,
    *,
    min: int | None = None,
    max: int | None = None,
    checkout_timeout: float | None = None,
    command_timeout: float | None = None,
    health_every: float | None = 30.0,
    leak_after: float | None = None,
    policy: PoolPolicy | None = None,
    name: str | None = None,
) -> AbstractAsyncContextManager[RedisPool]:
    """A pool of connections to the Redis server at ``url``; drained on exit.

    ``min``/``max`` bound the pool (default: the URL's ``min``/``max``
    options, else 1 and 16); ``policy`` gives every other sizing threshold
    (its own min/max are replaced by these). ``checkout_timeout`` bounds
    the wait for a member, ``command_timeout`` connecting and each reply
    (default: the URL's options, else 5 seconds each). A bad URL or option raises
    ``ConfigurationError`` here, not when entered; an unreachable server
    raises the retryable ``StoreUnavailable`` when entered (if ``min`` > 0).
    """
    spec = parse_redis_url(url)
    checkout_timeout = _first(checkout_timeout, spec.checkout_timeout, 5.0)
    command_timeout = _first(command_timeout, spec.command_timeout, 5.0)
    for option, value in (
        ("checkout_timeout", checkout_timeout),
        ("command_timeout", command_timeout),
    ):
        positive(option, value)
    positive("health_every", health_every)
    low, high = _first(min, spec.min, 1), _first(max, spec.max, 16)
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
