"""One timer task per node: a heap of deadlines, not a task per timer.

Timers belong to one incarnation of one actor: each remembers the cell's
generation, and the cell bumps it on restart and on stop, so a dead
incarnation's timers go stale without any bookkeeping (they are dropped when
they come due). The task sleeps in a cancel scope whose deadline is the
earliest timer; adding an earlier timer moves that deadline. It runs happily
under trio's MockClock with autojump.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import AskTimeout
from ._ref import PENDING, ActorRef, Reply
from ._states import DEAD

if TYPE_CHECKING:
    from ._cell import Cell


class Timer:
    """A handle on ``send_after``/``every``: ``cancel()`` it, or let the actor's
    stop or restart cancel it."""

    __slots__ = ("_cancelled", "cell", "deadline", "gen", "interval", "msg", "system")

    def __init__(
        self,
        cell: Cell,
        deadline: float,
        msg: Any,
        interval: float | None,
        system: bool,
    ) -> None:
        self.cell = cell
        self.gen = cell._gen
        self.deadline = deadline
        self.msg = msg
        self.interval = interval
        self.system = system
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def active(self) -> bool:
        """True until it has fired for good, been cancelled, or gone stale."""
        return (
            not self._cancelled
            and self.cell._state != DEAD
            and (self.system or self.gen == self.cell._gen)
        )

    def _fire(self, service: TimerService, now: float) -> None:
        if self._cancelled:
            return
        cell = self.cell
        if cell._state == DEAD:
            return
        if self.system:
            cell.system(self.msg)
            return
        if self.gen != cell._gen:
            return
        cell._enqueue((self.msg, None, None))
        if self.interval is not None:
            # Fixed rate, but never a burst to catch up after a stall.
            self.deadline = max(self.deadline + self.interval, now)
            service._push(self.deadline, self)


class _AskDeadlines:
    """The pending asks that share one timeout value, in deadline order.

    Asks are the hot path, and a trio cancel scope with a deadline costs more
    than the rest of a local round trip. Asks with the same timeout expire in
    the order they were made, so a FIFO per timeout value is already sorted:
    answered asks are dropped from its front as new ones arrive, and a single
    timer entry watches the oldest pending one.
    """

    __slots__ = ("armed", "items", "pending", "service", "timeout")

    def __init__(self, service: TimerService, timeout: float) -> None:
        self.service = service
        self.timeout = timeout
        self.items: deque[tuple[float, Reply, ActorRef, Any, float]] = deque()
        self.armed = False
        self.pending = 0

    def settled(self) -> None:
        """One of its asks was answered (or timed out, or its asker left).
        With none pending, its messages go at once. An armed queue stays
        (empty) until its deadline fires: the heap entry lives until then
        anyway, and the next ask with this timeout reuses both. Asks made one
        after another (the common case) thus cost no heap push and no timer
        wake-up each; the fire forgets a queue left with nothing pending."""
        self.pending -= 1
        if self.pending == 0:
            self.items.clear()
            if not self.armed:
                asks = self.service._asks
                if asks.get(self.timeout) is self:
                    del asks[self.timeout]

    def add(self, deadline: float, reply: Reply, ref: ActorRef, msg: Any, timeout: float) -> None:
        items = self.items
        while items and items[0][1].outcome is not PENDING:
            items.popleft()
        items.append((deadline, reply, ref, msg, timeout))
        reply.queue = self
        self.pending += 1
        if not self.armed:
            self.armed = True
            self.service._push(deadline, self)

    def _fire(self, service: TimerService, now: float) -> None:
        self.armed = False
        items = self.items
        while items:
            deadline, reply, ref, msg, timeout = items[0]
            if reply.outcome is PENDING and deadline > now:
                self.armed = True
                service._push(deadline, self)
                return
            items.popleft()
            if reply.outcome is PENDING:
                service.ask_timeouts += 1
                # (may settle the queue, which then empties ``items``)
                reply.fail(AskTimeout(ref._timeout_text(msg, timeout)))
        # Nothing pending: forget this timeout value, or a program that uses
        # many distinct timeouts would keep an entry for each, for ever.
        if service._asks.get(self.timeout) is self:
            del service._asks[self.timeout]


class _Sweep:
    """Calls ``fn`` once when due (the kernel's linger sweep)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn

    def _fire(self, service: TimerService, now: float) -> None:
        self.fn()


class TimerService:
    __slots__ = ("_asks", "_compacted", "_heap", "_scope", "_seq", "ask_timeouts")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer | _AskDeadlines | _Sweep]] = []
        self._scope: trio.CancelScope | None = None
        self._seq = itertools.count()
        self._asks: dict[float, _AskDeadlines] = {}
        self._compacted = 1024
        #: Asks failed with ``AskTimeout`` after they were sent (the metrics).
        self.ask_timeouts = 0

    def __len__(self) -> int:
        """Timers (``send_after``/``every``/backoff) still to fire; ask
        deadlines and internal wake-ups are not counted."""
        return sum(1 for entry in self._heap if type(entry[2]) is Timer and entry[2].active)

    @property
    def asks_pending(self) -> int:
        """Asks with a deadline still waiting for their answer (local and
        remote: every ask but those made with ``timeout=None``)."""
        return sum(queue.pending for queue in self._asks.values())

    @property
    def ask_queues(self) -> int:
        """Distinct ask timeouts with asks pending (each is one queue)."""
        return sum(1 for queue in self._asks.values() if queue.pending)

    @property
    def heap_size(self) -> int:
        """Entries in the heap, due or not (timers, ask-queue watches, sweeps):
        what the timer task wakes up for."""
        return len(self._heap)

    def start(self, cell: Cell, delay: float, msg: Any, interval: float | None) -> Timer:
        timer = Timer(cell, trio.current_time() + max(0.0, delay), msg, interval, False)
        self._push(timer.deadline, timer)
        return timer

    def call_later(self, delay: float, cell: Cell, system_msg: Any) -> Timer:
        """Deliver a *system* message to ``cell`` after ``delay`` (backoff)."""
        timer = Timer(cell, trio.current_time() + max(0.0, delay), system_msg, None, True)
        self._push(timer.deadline, timer)
        return timer

    def call_soon_after(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` (synchronous, quick) in the timer task after ``delay``."""
        self._push(trio.current_time() + delay, _Sweep(fn))

    def ask_timeout(self, timeout: float, reply: Reply, ref: ActorRef, msg: Any) -> None:
        """Fail ``reply`` with ``AskTimeout`` unless it is answered in time."""
        queue = self._asks.get(timeout)
        if queue is None:
            queue = self._asks[timeout] = _AskDeadlines(self, timeout)
        queue.add(trio.current_time() + timeout, reply, ref, msg, timeout)

    def _push(self, deadline: float, entry: Timer | _AskDeadlines | _Sweep) -> None:
        if len(self._heap) >= 2 * self._compacted:
            self._compact()
        heapq.heappush(self._heap, (deadline, next(self._seq), entry))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def _compact(self) -> None:
        """Drop cancelled and stale timers (a cancelled hour-long timer, the
        timers of a stopped actor) instead of keeping them until they are due;
        amortised: only once the heap has doubled since the last time."""
        self._heap = [e for e in self._heap if type(e[2]) is not Timer or e[2].active]
        heapq.heapify(self._heap)
        self._compacted = max(1024, len(self._heap))

    def _fire_due(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            heapq.heappop(heap)[2]._fire(self, now)

    async def run(self) -> None:
        while True:
            self._fire_due(trio.current_time())
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
