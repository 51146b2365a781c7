"""``WorkerPool``: the actor behind a worker pool's one ref.

It is the router and the supervisor of its workers in one (as Akka's pool
routers). A message told or asked to it is handed to a worker, with the
original sender and, for an ask, the original reply slot, so the worker's
answer goes straight to the asker and the router never waits for a handler.
Each message travels with a completion note (``_notes.Done``, the worker's
reply slot) that tells the router when the handler finished: that is how it
knows each worker's load and how long messages waited (``_load``). The one
sizing policy (``Sizer``) decides the size from those numbers, on a timer.

With a balancing routing (round-robin, random, least-loaded) a worker holds
at most ``prefetch`` messages; the rest wait in the router's own queue, in
arrival order, and each finished message pulls the next one to the worker
that finished it, at once, in the completion note. So a worker added by a
growth takes its share of what is waiting, and a slow worker does not
collect a queue while others idle. A hash ring sends each message to its
key's owner, and a broadcast to everyone, straight into their mailboxes.

Workers are ``permanent`` children: one that crashes is restarted by the
pool's supervision strategy and keeps its place. A shrink stops only idle
workers, after taking them out of the routing, with a ``PoisonPill``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import attrs
import msgspec
import trio

from .._errors import ActorDead, SpawnRefused
from ..actors import Actor, PoisonPill, Terminated, handler
from ..protocols import default_registry
from ..runtime import ActorRef, Cell, StreamSink, TraceNote, cell_of
from ..supervisors import Strategy
from ._load import PoolLoad
from ._notes import Done, Gather
from ._policy import PoolPolicy, PoolStatus, Sizer
from ._routing import Routing

__all__ = ["GetPoolStatus", "PoolSettings", "WorkerPool"]

log = logging.getLogger("trouper.pools")


class GetPoolStatus(msgspec.Struct, frozen=True):
    """Ask a worker pool's ref for its ``PoolStatus`` (the pool answers it
    itself; workers never see it). ``trouper.pools.pool_status(ref)`` does."""


class _Tick(msgspec.Struct, frozen=True):
    """The router's sizing timer (local only: never registered for the wire)."""


default_registry.register(GetPoolStatus, "trouper.pools:GetPoolStatus")
default_registry.register(PoolStatus, "trouper.pools:PoolStatus")

#: One message waiting in the router's queue: (msg, sender, reply, arrived).
Queued = tuple[Any, ActorRef | None, Any, float]


@attrs.frozen
class PoolSettings:
    """What ``spawn_pool`` validated, for the router (local: never sent)."""

    worker: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    policy: Any
    routing: Any
    label: str
    prefetch: int
    max_queued: int
    worker_mailbox_size: int | None
    supervision: Any


def tick_interval(policy: PoolPolicy) -> float:
    """How often the router consults the policy: its growth rate limit, and
    often enough to notice the end of a quiet period (never under 10 ms)."""
    return max(0.01, min(max(policy.grow_interval, 0.01), policy.shrink_after / 4, 1.0))


class WorkerPool(Actor):
    """The router and supervisor of a worker pool (see the module docstring)."""

    def __init__(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.policy: PoolPolicy = settings.policy
        self.routing: Routing = settings.routing
        self.label = settings.label
        if settings.supervision is not None:
            self.supervision: Strategy | None = settings.supervision
        self.sizer = Sizer(self.policy)
        self.load: PoolLoad[ActorRef] = PoolLoad()
        self.workers: list[ActorRef] = []  # routed to, in start order
        self.cells: dict[ActorRef, Cell] = {}
        self.queue: deque[Queued] = deque()  # bounded by settings.max_queued
        self.room: trio.Event | None = None  # set when the queue has room again
        self.me: Cell | None = None
        self.tick = tick_interval(self.policy)
        self.idle_tick = max(self.tick, 1.0)
        self.resized_at = -float("inf")

    async def on_start(self) -> None:
        self.me = cell_of(self.ctx.self_ref)
        for _ in range(self.policy.min):
            await self._grow_one()
        self.ctx.send_after(self.tick, _Tick())

    async def on_stop(self) -> None:
        self._fail_queued("stopped before a worker took the message")

    async def on_restart(self, exc: BaseException) -> None:
        log.warning("%s: the router restarted after %r", self.label, exc)

    def _fail_queued(self, why: str) -> None:
        while self.queue:
            _, _, reply, _ = self.queue.popleft()
            if reply is not None:
                reply.fail(ActorDead(f"worker pool {self.label!r} {why}"))

    async def _grow_one(self) -> None:
        s = self.settings
        ref = await self.ctx.spawn(
            s.worker, *s.args, mailbox_size=s.worker_mailbox_size, restart="permanent", **s.kwargs
        )
        cell = cell_of(ref)
        assert cell is not None  # a child of this actor is on this node
        self.workers.append(ref)
        self.cells[ref] = cell
        self.load.add(ref)
        self.ctx.watch(ref)
        self._pull()

    # ------------------------------------------------------------ routing

    def _load_of(self, ref: ActorRef) -> int:
        """Messages handed to ``ref`` and not finished, or its mailbox depth
        if larger (something else may send to a worker too)."""
        return max(self.load.outstanding(ref), self.cells[ref].mailbox_depth)

    def _free(self) -> list[ActorRef]:
        prefetch = self.settings.prefetch
        return [
            w
            for w in self.workers
            if self.load.outstanding(w) < prefetch and not self.cells[w].stopping
        ]

    async def receive(self, msg: Any) -> None:
        """Every message the pool does not answer itself: route it."""
        assert self.me is not None
        reply = self.me.take_reply()
        tracing = self.ctx.node.kernel.tracing
        if reply is None and tracing is not None:
            # A tell, traced: the worker's span goes under this handler's,
            # which is under the sender's, so one trace runs through the pool.
            reply = TraceNote(tracing.context())
        await self._route(msg, self.ctx.sender, reply)
        now = trio.current_time()
        if now - self.resized_at >= self.tick:
            # Ask the policy now rather than at the next tick, which may be
            # slow while the pool idles (growth is rate-limited all the same).
            await self.resize(now)

    async def _route(self, msg: Any, sender: ActorRef | None, reply: Any) -> None:
        if not self.workers:  # all stopped at once; normally never
            await self._grow_one()
        if isinstance(reply, StreamSink):
            # A stream goes to one worker as it is (the worker's stream
            # handler feeds the consumer directly); it is not counted as load.
            target = self._pick(self.workers, msg, reply)
            if target is not None:
                await self._put(self.cells[target], (msg, sender, reply))
            return
        if self.routing.broadcast:
            targets = list(self.workers)
            gather = None if reply is None else Gather(reply, len(targets))
            for i, ref in enumerate(targets):
                await self._hand(ref, msg, sender, None if gather is None else gather.part(i))
            return
        if not self.routing.balancing:
            owner = self._pick(self.workers, msg, reply)
            if owner is not None:
                await self._hand(owner, msg, sender, reply)
            return
        now = trio.current_time()
        if not self.queue:
            free = self._free()
            if free:
                first = self._pick(free, msg, reply)
                if first is not None:
                    self._give(first, msg, sender, reply)
                return
        while len(self.queue) >= self.settings.max_queued:
            # Full: wait (so this router's own bounded mailbox fills and its
            # senders wait), sizing the pool meanwhile (the timer's tick is
            # queued behind this very message).
            self.room = trio.Event()
            with trio.move_on_after(self.tick):
                await self.room.wait()
            await self.resize(trio.current_time())
        self.queue.append((msg, sender, reply, now))
        self._pull()  # a worker may have finished while this one waited

    def _pick(self, workers: list[ActorRef], msg: Any, reply: Any) -> ActorRef | None:
        try:
            ref: ActorRef = self.routing.pick(workers, msg, self._load_of)
        except Exception as exc:  # the user's key function (never Cancelled)
            log.warning("%s: cannot route %s: %r", self.label, type(msg).__name__, exc)
            if reply is not None:
                reply.fail(exc)
            return None
        return ref

    def _note(self, ref: ActorRef, reply: Any) -> Done:
        return Done(self, ref, self.load.handed(ref, trio.current_time()), reply)

    def _give(self, ref: ActorRef, msg: Any, sender: ActorRef | None, reply: Any) -> None:
        """Hand a message over without waiting: a balancing routing keeps at
        most ``prefetch`` per worker, far under any mailbox bound."""
        item = (msg, sender, self._note(ref, reply))
        cell = self.cells[ref]
        if not cell.try_deliver(item):
            cell.park(item, None)

    async def _hand(self, ref: ActorRef, msg: Any, sender: ActorRef | None, reply: Any) -> None:
        """Hand a message over, waiting for room in the worker's mailbox."""
        await self._put(self.cells[ref], (msg, sender, self._note(ref, reply)))

    async def _put(self, cell: Cell, item: tuple[Any, ActorRef | None, Any]) -> None:
        if not cell.try_deliver(item):
            admitted = trio.Event()
            cell.park(item, admitted.set)
            await admitted.wait()

    def finished(self, ref: ActorRef, token: int) -> None:
        """A note came back (from the worker's task): count it, and give
        what waits in the queue to the workers with room."""
        waited = self.load.finished(ref, token, trio.current_time())
        if waited is not None:
            self.sizer.record_wait(waited)
        if self.queue and ref in self.cells:
            # While messages wait in the queue every other worker is full
            # (each one freed pulls at once), so only this one can take more.
            self._pull([ref] if not self.cells[ref].stopping else [])

    def _pull(self, free: list[ActorRef] | None = None) -> None:
        """Give what waits to the workers with room (``free``: those known
        to have room; by default, found)."""
        queue = self.queue
        if not queue or not self.routing.balancing:
            return
        if self.me is not None and self.me.stopping:
            return  # what waits fails in on_stop, not in a stopping worker
        if free is None:
            free = self._free()
        now = trio.current_time()
        prefetch = self.settings.prefetch
        while queue and free:
            msg, sender, reply, arrived = queue.popleft()
            self.sizer.record_wait(now - arrived)
            ref = self._pick(free, msg, reply)
            if ref is not None:
                self._give(ref, msg, sender, reply)
                if self.load.outstanding(ref) >= prefetch:
                    free.remove(ref)
        if self.room is not None and len(queue) < self.settings.max_queued:
            self.room.set()
            self.room = None

    # ------------------------------------------------------------ sizing

    @handler
    async def _tick(self, msg: _Tick) -> None:
        await self.resize(trio.current_time())
        # Often while there is work or the pool is above min (a quiet period
        # may end); seldom while it idles at min, where only a message can
        # change anything (and receive consults the policy then).
        idle = not (self.queue or self.load.busy() or len(self.workers) > self.policy.min)
        self.ctx.send_after(self.idle_tick if idle else self.tick, _Tick())

    async def resize(self, now: float) -> None:
        """Ask the policy for the size, and grow or shrink to it."""
        self.resized_at = now
        size = len(self.workers)
        oldest = self.load.oldest_wait(now)
        if self.queue:
            oldest = max(oldest, now - self.queue[0][3])
        target = self.sizer.decide(
            now, size=size, active=self.load.busy(), waiters=self._waiters(), oldest_wait=oldest
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
                self._forget(ref)
                await ref.tell(PoisonPill())  # after whatever is queued: nothing is lost

    def _forget(self, ref: ActorRef) -> None:
        self.workers.remove(ref)
        self.load.remove(ref)
        self.ctx.unwatch(ref)
        del self.cells[ref]

    def _waiters(self) -> int:
        depth = 0 if self.me is None else self.me.mailbox_depth
        return self.load.waiting() + len(self.queue) + depth

    @handler
    async def _terminated(self, msg: Terminated) -> None:
        ref = msg.ref
        if ref not in self.cells:
            return
        # A worker gone for good (stopped from outside): out of the routing,
        # and the pool keeps `min`.
        log.warning("%s: worker %s stopped (%s)", self.label, ref.path, msg.reason)
        self._forget(ref)
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
