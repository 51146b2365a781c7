"""``ResourcePool``: members that are opened, lent, checked and closed.

The core under the database pools and ``transports.ConnectionPool``: it owns
the members (connections, sessions), lends them with ``checkout()``, and
sizes itself with the one policy (``_policy.Sizer``). Everything that takes
time runs in ``run()``, the pool's own task, which the owner starts in a
nursery (``open_resource_pool``) or as an actor's background task, so a pool
hosted by an actor is supervised like any other work of that actor.

Why it is shaped this way:

* a returned member goes straight to the oldest waiter (fair, no stampede);
  idle members are reused last-in first-out, so the surplus stays at the
  bottom of the stack where shrinking and health checks find it;
* a checkout that ends by cancellation or by an error the owner calls
  broken (``is_broken``) discards its member: a connection left mid-query or
  mid-message is not safe to lend again;
* a checkout held past ``leak_after`` is logged with the stack that took it
  and reclaimed (closed and replaced), so one forgotten ``async with`` does
  not starve the pool forever.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, TypeVar

import trio

from trouper._errors import ConfigurationError, PoolClosed, PoolTimeout

from ._members import CLOSE_TIMEOUT, IDLE_TICK, Member, Waiter, never_broken
from ._policy import PoolPolicy, PoolStatus, Sizer

__all__ = ["ResourcePool", "open_resource_pool"]

T = TypeVar("T")

log = logging.getLogger("trouper.pools")


class ResourcePool(Generic[T]):
    """A self-sizing pool of members made by ``open`` and ended by ``close``.

    ``check`` (optional) raises when an idle member is unhealthy; idle
    members unused for ``health_every`` seconds are checked. See the module
    docstring for the rules; ``status()`` is a cheap frozen snapshot.
    """

    def __init__(
        self,
        name: str,
        *,
        open: Callable[[], Awaitable[T]],
        close: Callable[[T], Awaitable[None]],
        check: Callable[[T], Awaitable[None]] | None = None,
        is_broken: Callable[[BaseException], bool] = never_broken,
        policy: PoolPolicy | None = None,
        checkout_timeout: float = 5.0,
        leak_after: float | None = None,
        health_every: float | None = 30.0,
    ) -> None:
        if not checkout_timeout > 0:
            raise ConfigurationError(f"checkout_timeout must be > 0, got {checkout_timeout!r}")
        if leak_after is not None and not leak_after > 0:
            raise ConfigurationError(f"leak_after must be > 0 or None, got {leak_after!r}")
        if health_every is not None and not health_every > 0:
            raise ConfigurationError(f"health_every must be > 0 or None, got {health_every!r}")
        self.name = name
        self.policy = policy if policy is not None else PoolPolicy()
        self._open, self._close, self._check = open, close, check
        self._is_broken = is_broken
        self._checkout_timeout = checkout_timeout
        self._leak_after = leak_after
        self._health_every = health_every
        self._sizer = Sizer(self.policy)
        self._idle: deque[Member[T]] = deque()
        self._active: set[Member[T]] = set()
        self._waiters: deque[Waiter[T]] = deque()
        self._opening = 0
        self._checking = 0
        self._closed = False  # no more checkouts
        self._stopping = False  # the pool's task closes everything and returns
        self._returns = trio.lowlevel.ParkingLot()
        self._last_open_error: BaseException | None = None
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._filled = False

    # -- lending ---------------------------------------------------------

    def checkout(self, timeout: float | None = None) -> AbstractAsyncContextManager[T]:
        """Borrow a member for the ``async with`` block (see the class doc)."""
        return self._checkout(self._checkout_timeout if timeout is None else timeout)

    @asynccontextmanager
    async def _checkout(self, timeout: float) -> AsyncIterator[T]:
        member = await self._acquire(timeout)
        discard = True
        try:
            yield member.value
            discard = False
        except Exception as exc:
            discard = self._is_broken(exc)
            raise
        finally:
            self._release(member, discard)

    async def _acquire(self, timeout: float) -> Member[T]:
        if self._closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        now = trio.current_time()
        if self._idle and not self._waiters:
            member = self._idle.pop()
        else:
            member = await self._wait(now, timeout)
        member.since = trio.current_time()
        if self._leak_after is not None:
            member.stack = traceback.extract_stack(limit=14)[:-2]
        self._active.add(member)
        return member

    async def _wait(self, now: float, timeout: float) -> Member[T]:
        waiter: Waiter[T] = Waiter(now)
        self._waiters.append(waiter)
        self._wake.set()
        try:
            with trio.move_on_after(timeout):
                await waiter.event.wait()
        except BaseException:
            if waiter.member is not None:  # handed over just as we were cancelled
                self._put(waiter.member)
            raise
        finally:
            if waiter.member is None and waiter in self._waiters:
                self._waiters.remove(waiter)
        if waiter.member is not None:
            self._sizer.record_wait(trio.current_time() - now)
            return waiter.member
        if self._closed:
            raise PoolClosed(f"pool {self.name!r} closed while waiting for a member")
        cause = self._last_open_error
        detail = f"; the last member failed to open: {cause!r}" if cause is not None else ""
        raise PoolTimeout(
            f"pool {self.name!r}: no member came free within {timeout:g} s "
            f"({len(self._active)} busy, max {self.policy.max}){detail}"
        )

    def _release(self, member: Member[T], discard: bool) -> None:
        if member.reclaimed:
            return  # the leak detector took it back and closed it already
        self._active.discard(member)
        member.stack = None
        if discard or self._closed:
            self._spawn_close(member)
        else:
            self._put(member)
        self._wake.set()
        self._returns.unpark_all()

    def _put(self, member: Member[T]) -> None:
        """Hand a free member to the oldest waiter, or keep it idle."""
        member.since = trio.current_time()
        if self._waiters:
            waiter = self._waiters.popleft()
            waiter.member = member
            waiter.event.set()
            # Lent from now on: counted while its waiter wakes up, or the
            # sizer sees a smaller pool than there is and opens past max.
            self._active.add(member)
        else:
            self._active.discard(member)  # a hand-off its waiter gave back
            self._idle.append(member)

    # -- the pool's task -------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open ``min`` members, report started, then size, check and reclaim until
        drained or cancelled; every member is closed on the way out.

        A failure to open the first ``min`` members is raised here, at
        start, where a wrong URL or password is best reported.
        """
        if not self._filled:
            await self.fill()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await self._maintain()
            finally:
                with trio.CancelScope(shield=True):
                    await self._close_all()
                nursery.cancel_scope.cancel()

    async def fill(self) -> None:
        """Open the first ``min`` members now (``run`` does it if not done),
        raising the first failure as itself rather than in an exception group."""
        opened: list[T] = []
        errors: list[Exception] = []

        async def one() -> None:
            try:
                opened.append(await self._open())
            except Exception as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(self.policy.min):
                nursery.start_soon(one)
        if errors:
            with trio.CancelScope(shield=True):
                for value in opened:
                    await self._close_one(Member(value, 0.0))
            raise errors[0]
        now = trio.current_time()
        self._idle.extend(Member(value, now) for value in opened)
        self._filled = True

    async def _maintain(self) -> None:
        next_health = trio.current_time() + (self._health_every or math.inf)
        while not self._stopping:
            with trio.move_on_after(self._tick()):
                await self._wake.wait()
            self._wake = trio.Event()
            if self._closed:
                continue  # draining: members are only closed now
            now = trio.current_time()
            self._resize(now)
            if self._leak_after is not None:
                self._reclaim_leaks(now)
            if now >= next_health:
                next_health = now + (self._health_every or math.inf)
                self._check_idle(now)

    def _tick(self) -> float:
        if self._waiters:
            oldest = trio.current_time() - self._waiters[0].since
            return max(0.0, self.policy.grow_wait - oldest) + 0.001
        return IDLE_TICK

    def _resize(self, now: float) -> None:
        size = len(self._idle) + len(self._active) + self._opening + self._checking
        oldest = now - self._waiters[0].since if self._waiters else 0.0
        target = self._sizer.decide(
            now,
            size=size,
            active=len(self._active),
            waiters=len(self._waiters),
            oldest_wait=oldest,
        )
        if target > size:
            assert self._nursery is not None
            for _ in range(target - size):
                self._opening += 1
                self._nursery.start_soon(self._open_one)
        while target < size and self._idle:
            self._spawn_close(self._idle.popleft())  # the least recently used
            size -= 1

    async def _open_one(self) -> None:
        try:
            value = await self._open()
        except Exception as exc:
            self._opening -= 1
            self._last_open_error = exc
            log.warning("pool %r: a member failed to open: %r", self.name, exc)
            return
        except BaseException:
            self._opening -= 1
            raise
        self._opening -= 1
        self._last_open_error = None
        member = Member(value, trio.current_time())
        if self._closed:
            self._spawn_close(member)
        else:
            self._put(member)

    def _reclaim_leaks(self, now: float) -> None:
        assert self._leak_after is not None
        for member in [m for m in self._active if now - m.since > self._leak_after]:
            stack = "".join(traceback.format_list(member.stack)) if member.stack else "?\n"
            log.warning(
                "pool %r: a member was held for %.1f s (leak_after=%g s) and is reclaimed; "
                "it was taken at:\n%s",
                self.name,
                now - member.since,
                self._leak_after,
                stack,
            )
            member.reclaimed = True
            self._active.discard(member)
            self._spawn_close(member)
            self._returns.unpark_all()  # a drain waiting for it stops waiting

    def _check_idle(self, now: float) -> None:
        if self._check is None or self._nursery is None:
            return
        assert self._health_every is not None
        stale = [m for m in self._idle if now - m.since >= self._health_every]
        for member in stale:
            self._idle.remove(member)
            self._checking += 1
            self._nursery.start_soon(self._check_one, member)

    async def _check_one(self, member: Member[T]) -> None:
        assert self._check is not None
        healthy = False
        try:
            with trio.move_on_after(self._checkout_timeout):
                await self._check(member.value)
                healthy = True
        except Exception as exc:
            log.info("pool %r: an idle member failed its health check: %r", self.name, exc)
        finally:
            self._checking -= 1
        if healthy and not self._closed:
            self._put(member)
        else:
            self._spawn_close(member)
        self._wake.set()

    def _spawn_close(self, member: Member[T]) -> None:
        if self._nursery is None:
            return
        self._nursery.start_soon(self._close_one, member)

    async def _close_one(self, member: Member[T]) -> None:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLOSE_TIMEOUT):
                try:
                    await self._close(member.value)
                except Exception as exc:
                    log.info("pool %r: closing a member failed: %r", self.name, exc)

    async def _close_all(self) -> None:
        self._closed = self._stopping = True
        for waiter in self._waiters:
            waiter.event.set()
        members = [*self._idle, *self._active]
        self._idle.clear()
        self._active.clear()
        # Those members are reclaimed: their holders' returns are no-ops now,
        # so a drain parked for them must look again, not wait out its timeout.
        self._returns.unpark_all()
        async with trio.open_nursery() as nursery:
            for member in members:
                member.reclaimed = True
                nursery.start_soon(self._close_one, member)
        self._drained.set()

    # -- ending ----------------------------------------------------------

    async def drain(self, timeout: float = 30.0) -> None:
        """Refuse new checkouts, wait up to ``timeout`` for the active ones to
        come back, then close every member (the active ones too)."""
        self._closed = True
        for waiter in self._waiters:
            waiter.event.set()
        with trio.move_on_after(timeout):
            while self._active:
                await self._returns.park()
        if self._nursery is None:
            return
        self._stopping = True
        self._wake.set()  # the pool's task closes everything and returns
        await self._drained.wait()

    def status(self) -> PoolStatus:
        active, idle = len(self._active), len(self._idle)
        size = active + idle + self._opening + self._checking
        return PoolStatus(
            name=self.name,
            size=size,
            active=active,
            idle=idle,
            waiters=len(self._waiters),
            utilisation=active / size if size else 0.0,
            expansions=self._sizer.expansions,
            shrinks=self._sizer.shrinks,
            min=self.policy.min,
            max=self.policy.max,
        )


@asynccontextmanager
async def open_resource_pool(name: str, **kwargs: Any) -> AsyncIterator[ResourcePool[Any]]:
    """A ``ResourcePool`` running in a nursery of its own; drained on exit.

    An exception raised by the ``async with`` block comes out as itself, as
    if there were no nursery (Trio's nursery would wrap it in a group).
    """
    drain_timeout = kwargs.pop("drain_timeout", 30.0)
    pool: ResourcePool[Any] = ResourcePool(name, **kwargs)
    await pool.fill()
    raised: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            try:
                yield pool
            except BaseException as exc:
                raised = exc
                raise
            finally:
                with trio.CancelScope(shield=True):
                    await pool.drain(drain_timeout)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if raised is None or list(group.exceptions) != [raised]:
            raise
    if raised is not None:
        raise raised
