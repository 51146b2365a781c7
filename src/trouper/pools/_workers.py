"""Worker pools: ``node.spawn_pool(Worker, ...)`` returns one ref that routes.

The ref is a ``WorkerPool`` actor: the router and the supervisor of its
workers in one (as Akka's pool routers). A message told or asked to it is
handed to a worker picked by the routing (``_routing``), with the original
sender and, for an ask, the original reply slot, so the worker's answer goes
straight to the asker and the router never waits for a handler. Each
message travels with a completion note (``_Done``, the worker's reply
slot), which tells the router when the handler finished: that is how it
knows each worker's load and how long messages waited (``_load``), and the
one sizing policy (``PoolPolicy``/``Sizer``) decides the size from those
numbers on a timer.

Workers are ``permanent`` children: one that crashes is restarted by the
pool's supervision strategy (OneForOne unless ``supervision=`` says
otherwise) and keeps its place in the pool. A shrink stops only idle
workers, after taking them out of the routing, with a ``PoisonPill`` (what
is queued before it is handled), so no message is lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from .._errors import ConfigurationError, SpawnRefused
from ..actors import Actor, PoisonPill, Terminated, handler
from ..protocols import default_registry
from ..runtime import ActorRef, Cell, cell_of
from ..supervisors import Strategy
from ._load import PoolLoad
from ._policy import PoolPolicy, PoolStatus, Sizer
from ._routing import Routing, make_routing

__all__ = ["GetPoolStatus", "WorkerPool", "pool_status", "spawn_pool"]

log = logging.getLogger("trouper.pools")


class GetPoolStatus(msgspec.Struct, frozen=True):
    """Ask a worker pool's ref for its ``PoolStatus`` (the pool answers it
    itself; workers never see it). ``trouper.pools.pool_status(ref)`` does."""


class _Tick(msgspec.Struct, frozen=True):
    """The router's sizing timer (local only: never registered for the wire)."""


default_registry.register(GetPoolStatus, "trouper.pools:GetPoolStatus")
default_registry.register(PoolStatus, "trouper.pools:PoolStatus")


async def pool_status(ref: ActorRef, timeout: float | None = 5.0) -> PoolStatus:
    """The ``PoolStatus`` of the worker pool behind ``ref`` (local or remote)."""
    status = await ref.ask(GetPoolStatus(), timeout=timeout)
    if not isinstance(status, PoolStatus):
        raise ConfigurationError(f"{ref!r} is not a worker pool (it answered {status!r})")
    return status


class _Done:
    """A worker's reply slot for a routed message: answers the original
    reply slot (if any) and tells the router the message is finished."""

    __slots__ = ("pool", "reply", "token", "trace", "worker")

    def __init__(self, pool: WorkerPool, worker: ActorRef, token: int, reply: Any) -> None:
        self.pool = pool
        self.worker = worker
        self.token = token
        self.reply = reply
        self.trace = getattr(reply, "trace", None)  # the asker's tracing context

    def set(self, value: Any) -> None:
        if self.reply is not None:
            self.reply.set(value)
        self.pool.finished(self.worker, self.token)

    def fail(self, exc: BaseException) -> None:
        if self.reply is not None:
            self.reply.fail(exc)
        self.pool.finished(self.worker, self.token)


class _Gather:
    """An ask to a broadcast pool: every worker's answer, in worker order, or
    the first failure."""

    __slots__ = ("left", "reply", "results")

    def __init__(self, reply: Any, n: int) -> None:
        self.reply = reply
        self.results: list[Any] = [None] * n
        self.left = n

    def part(self, i: int) -> _Part:
        return _Part(self, i)


class _Part:
    __slots__ = ("gather", "i", "trace")

    def __init__(self, gather: _Gather, i: int) -> None:
        self.gather = gather
        self.i = i
        self.trace = getattr(gather.reply, "trace", None)

    def set(self, value: Any) -> None:
        g = self.gather
        if g.left > 0:
            g.results[self.i] = value
            g.left -= 1
            if g.left == 0:
                g.reply.set(g.results)

    def fail(self, exc: BaseException) -> None:
        g = self.gather
        if g.left > 0:
            g.left = 0
            g.reply.fail(exc)


def _tick_interval(policy: PoolPolicy) -> float:
    """How often the router consults the policy: its growth rate limit, and
    often enough to notice the end of a quiet period (never under 10 ms)."""
    return max(0.01, min(max(policy.grow_interval, 0.01), policy.shrink_after / 4, 1.0))


class WorkerPool(Actor):
    """The router and supervisor of a worker pool (see the module docstring)."""

    def __init__(
        self,
        worker: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        policy: PoolPolicy,
        routing: Routing,
        label: str,
        worker_mailbox_size: int | None,
        supervision: Strategy | None,
    ) -> None:
        self.worker = worker
        self.args = args
        self.kwargs = kwargs
        self.policy = policy
        self.routing = routing
        self.label = label
        self.worker_mailbox_size = worker_mailbox_size
        if supervision is not None:
            self.supervision = supervision
        self.sizer = Sizer(policy)
        self.load: PoolLoad[ActorRef] = PoolLoad()
        self.workers: list[ActorRef] = []  # routed to, in start order
        self.cells: dict[ActorRef, Cell] = {}
        self.me: Cell | None = None

    async def on_start(self) -> None:
        self.me = cell_of(self.ctx.self_ref)
        for _ in range(self.policy.min):
            await self._grow_one()
        self.ctx.every(_tick_interval(self.policy), _Tick())

    async def _grow_one(self) -> None:
        ref = await self.ctx.spawn(
            self.worker,
            *self.args,
            mailbox_size=self.worker_mailbox_size,
            restart="permanent",
            **self.kwargs,
        )
        cell = cell_of(ref)
        assert cell is not None  # a child of this actor is on this node
        self.workers.append(ref)
        self.cells[ref] = cell
        self.load.add(ref)
        self.ctx.watch(ref)

    # ------------------------------------------------------------ routing

    def _load_of(self, ref: ActorRef) -> int:
        """Messages handed to ``ref`` and not finished, or its mailbox depth
        if larger (something else may send to a worker too)."""
        return max(self.load.outstanding(ref), self.cells[ref].mailbox_depth)

    async def receive(self, msg: Any) -> None:
        """Every message the pool does not answer itself: route it."""
        assert self.me is not None
        reply = self.me.take_reply()
        sender = self.ctx.sender
        if not self.workers:  # all stopped at once; normally never
            await self._grow_one()
        if self.routing.broadcast:
            targets = list(self.workers)
            if reply is not None:
                gather = _Gather(reply, len(targets))
                for i, ref in enumerate(targets):
                    await self._hand(ref, msg, sender, gather.part(i))
                return
            for ref in targets:
                await self._hand(ref, msg, sender, None)
            return
        try:
            ref = self.routing.pick(self.workers, msg, self._load_of)
        except Exception as exc:  # the user's key function (never Cancelled)
            log.warning("%s: cannot route %s: %r", self.label, type(msg).__name__, exc)
            if reply is not None:
                reply.fail(exc)
            return
        await self._hand(ref, msg, sender, reply)

    async def _hand(self, ref: ActorRef, msg: Any, sender: ActorRef | None, reply: Any) -> None:
        token = self.load.handed(ref, trio.current_time())
        item = (msg, sender, _Done(self, ref, token, reply))
        cell = self.cells[ref]
        if not cell.try_deliver(item):
            # The worker's mailbox is full: wait in its FIFO (so this
            # router's own bounded mailbox fills, and its senders wait).
            admitted = trio.Event()
            cell.park(item, admitted.set)
            await admitted.wait()

    def finished(self, ref: ActorRef, token: int) -> None:
        waited = self.load.finished(ref, token, trio.current_time())
        if waited is not None:
            self.sizer.record_wait(waited)

    # ------------------------------------------------------------ sizing

    @handler
    async def _tick(self, msg: _Tick) -> None:
        await self.resize(trio.current_time())

    async def resize(self, now: float) -> None:
        """Ask the policy for the size, and grow or shrink to it."""
        size = len(self.workers)
        target = self.sizer.decide(
            now,
            size=size,
            active=self.load.busy(),
            waiters=self._waiters(),
            oldest_wait=self.load.oldest_wait(now),
        )
        if target > size:
            for _ in range(target - size):
                try:
                    await self._grow_one()
                except SpawnRefused as exc:
                    log.warning("%s: cannot start a worker: %r", self.label, exc)
                    return
        elif target < size:
            for ref in self.load.idle(self.workers)[: size - target]:
                await self._retire(ref)

    async def _retire(self, ref: ActorRef) -> None:
        self.workers.remove(ref)
        self.load.remove(ref)
        self.ctx.unwatch(ref)
        del self.cells[ref]
        await ref.tell(PoisonPill())  # after whatever is queued: nothing is lost

    def _waiters(self) -> int:
        depth = 0 if self.me is None else self.me.mailbox_depth
        return self.load.waiting() + depth

    @handler
    async def _terminated(self, msg: Terminated) -> None:
        ref = msg.ref
        if ref not in self.cells:
            return
        # A worker gone for good (past what its restarts allow, or stopped
        # from outside): out of the routing; the policy keeps `min`.
        log.warning("%s: worker %s stopped (%s)", self.label, ref.path, msg.reason)
        self.workers.remove(ref)
        self.load.remove(ref)
        del self.cells[ref]
        while len(self.workers) < self.policy.min:
            await self._grow_one()

    @handler
    async def _status(self, msg: GetPoolStatus) -> PoolStatus:
        return self.status()

    def status(self) -> PoolStatus:
        size = len(self.workers)
        busy = self.load.busy()
        return PoolStatus(
            name=self.label,
            size=size,
            active=busy,
            idle=size - busy,
            waiters=self._waiters(),
            utilisation=busy / size if size else 0.0,
            expansions=self.sizer.expansions,
            shrinks=self.sizer.shrinks,
            min=self.policy.min,
            max=self.policy.max,
        )


def _resolve_policy(policy: PoolPolicy | None, lo: int | None, hi: int | None) -> PoolPolicy:
    if policy is None:
        return PoolPolicy(min=2 if lo is None else lo, max=64 if hi is None else hi)
    if not isinstance(policy, PoolPolicy):
        raise ConfigurationError(f"policy must be a trouper.PoolPolicy, not {policy!r}")
    if (lo is not None and lo != policy.min) or (hi is not None and hi != policy.max):
        raise ConfigurationError(
            f"min/max given twice: {lo}/{hi} and the policy's {policy.min}/{policy.max}"
        )
    return policy


async def spawn_pool(
    spawn: Callable[..., Awaitable[ActorRef]],
    rng: random.Random,
    cls: type[Actor],
    args: tuple[Any, ...],
    options: dict[str, Any],
) -> ActorRef:
    """What ``node.spawn_pool`` and ``ctx.spawn_pool`` do with ``spawn``
    (theirs): the pool options are taken out of ``options``, the rest go to
    every worker."""
    opts = dict(options)
    lo = opts.pop("min", None)
    hi = opts.pop("max", None)
    policy = _resolve_policy(opts.pop("policy", None), lo, hi)
    if policy.min < 1:
        raise ConfigurationError("a worker pool needs min >= 1 (it routes to its workers)")
    routing_spec = opts.pop("routing", "round-robin")
    routing: Routing = (
        routing_spec if hasattr(routing_spec, "pick") else make_routing(routing_spec, rng)
    )
    name = opts.pop("name", None)
    mailbox_size = opts.pop("mailbox_size", None)
    worker_mailbox_size = opts.pop("worker_mailbox_size", None)
    supervision = opts.pop("supervision", None)
    if supervision is not None and not isinstance(supervision, Strategy):
        raise ConfigurationError(f"supervision must be a Strategy, not {supervision!r}")
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ConfigurationError(f"spawn_pool needs an Actor subclass, not {cls!r}")
    label = name or f"{cls.__name__} pool"
    return await spawn(
        WorkerPool,
        cls,
        args,
        opts,
        policy,
        routing,
        label,
        worker_mailbox_size,
        supervision,
        name=name,
        mailbox_size=mailbox_size,
    )
