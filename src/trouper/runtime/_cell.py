"""``Cell``: the runtime's record of one actor, its queues and its task.

A cell owns a bounded mailbox of ``(msg, sender, reply)`` items and an
unbounded queue of system messages beside it. It holds a Trio task only while
it has work: the first item that arrives while it is idle starts a task in the
node's nursery; the task drains the queues in batches (one scheduler
checkpoint per batch) and ends when both are empty, after lingering for a
couple of scheduler passes so that ping-pong patterns (sequential asks) do not
pay for a new task per message. An idle cell holds no task and no deque.

Failures never unwind across cells: a handler's exception suspends the cell
and becomes a system message to its parent, which decides (``_supervision``).
Only a failure past the top guardian reaches the node.

The methods without a leading underscore are the runtime's interface to the
layers built on it (the actor context, remoting, the web gateway); the rest
is private to ``trouper.runtime``.
"""

from __future__ import annotations

import logging
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from .._errors import UnhandledMessage
from ..actors._actor import Actor, ClassInfo, class_info
from ..actors._messages import PoisonPill
from . import _lifecycle as life
from ._cell_ops import CellOps
from ._channels import ChannelRequest, channel_handled
from ._counters import SAMPLE_EVERY
from ._mailbox import SpaceWaiter, Waiter
from ._ref import WATCH_NOTICE, ActorRef, TraceNote, current_cell
from ._states import DEAD, NEW, RUNNING
from ._streams import StreamSink, pump

if TYPE_CHECKING:
    from ..supervisors._strategy import RestartIntensity, RestartType, Shutdown
    from ._background import BackgroundTasks
    from ._node import Node

log = logging.getLogger("trouper")

#: How long an idle cell keeps its task, waiting for more work, before it
#: gives it back (after ``linger`` scheduler passes).
_LINGER_TIME = 0.002

Item = tuple[Any, ActorRef | None, Any]


class Cell(CellOps):
    """One actor's cell."""

    __slots__ = ()

    def __init__(
        self,
        node: Node,
        parent: Cell | None,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str | None,
        path: str,
        uid: int,
        mailbox_size: int,
        restart: RestartType,
        shutdown: Shutdown,
    ) -> None:
        self.node = node
        self.parent = parent
        self.name = name
        self.ref = ActorRef(node.id, path, uid, self)
        self._cls = cls
        self._args = args
        self._kwargs = kwargs
        self._info: ClassInfo = class_info(cls)
        self._counts = node.kernel.counters.of(cls)  # None with metrics off
        #: Messages this actor handled (with metrics on): the dashboard's msg/s.
        self.handled = 0
        self._actor: Actor | None = None
        self._context: Any = None  # the ActorContext facade, made with the first instance
        self._mailbox: deque[Item] | None = None
        self._mailbox_size = mailbox_size
        self._sysq: deque[Any] | None = None
        self._waiters: deque[Waiter] | None = None
        self._wake: trio.lowlevel.Task | None = None
        self._fed_remotely = False
        self._state = NEW
        self._active = False
        self._scope: trio.CancelScope | None = None
        self._gen = 0
        self._children: dict[Cell, None] | None = None
        self._watchers: set[Any] | None = None  # Cells and remote watchers
        self._watching: set[ActorRef] | None = None
        self._bg: BackgroundTasks | None = None
        self._sender: ActorRef | None = None
        self._current_reply: Any = None
        self._restart: RestartType = restart
        self._shutdown: Shutdown = shutdown
        self._intensity: RestartIntensity | None = None
        self._terminated: trio.Event | None = None
        self._reason = ""
        self._kill_mode = ""
        # For the admin kill (runtime/_admin.py): its error, the scope of a
        # running on_start, and whether the task is in a system message.
        self._killed: BaseException | None = None
        self._start_scope: trio.CancelScope | None = None
        self._in_system = False

    def __repr__(self) -> str:
        return f"<Cell {self.ref.path} state={self._state}>"

    def system(self, msg: Any) -> None:
        """Queue a system message: never bounded, never dropped while alive."""
        sysq = self._sysq
        if sysq is None:
            sysq = self._sysq = deque()
        sysq.append(msg)
        if not self._active:
            self._schedule()
        elif self._wake is not None:
            self._wake_up()

    # ------------------------------------------------------------------ queues

    def _enqueue(self, item: Item) -> None:
        """Append to the mailbox regardless of its bound (callers check it)."""
        if self._state == DEAD:
            life.reject(self, item, "actor is dead")
            return
        mailbox = self._mailbox
        if mailbox is None:
            mailbox = self._mailbox = deque()
        mailbox.append(item)
        if not self._active:
            if self._state == RUNNING:
                self._schedule()
        elif self._wake is not None:
            self._wake_up()

    def _full(self) -> bool:
        mailbox = self._mailbox
        return mailbox is not None and (len(mailbox) >= self._mailbox_size or bool(self._waiters))

    async def _wait_for_space(self, item: Item) -> None:
        """Park until the cell hands ``item`` into its mailbox (FIFO)."""
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        waiter = SpaceWaiter(trio.lowlevel.current_task(), item)
        waiters.append(waiter)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if self._waiters is not None:
                self._waiters.remove(waiter)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _admit_waiters(self) -> None:
        waiters = self._waiters
        mailbox = self._mailbox
        assert waiters is not None and mailbox is not None
        while waiters and len(mailbox) < self._mailbox_size:
            waiter = waiters.popleft()
            mailbox.append(waiter.item)
            waiter.admitted()

    async def _linger(self, kernel: Any) -> None:
        """Park this task until work arrives or the kernel's next linger
        sweep (at most ``_LINGER_TIME`` away). One sweep timer serves every
        lingering cell, so lingering costs no timer and no cancel scope per
        message (either would cost more than the linger saves)."""
        self._wake = trio.lowlevel.current_task()
        kernel.add_lingering(self, _LINGER_TIME)

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._wake = None
            kernel.lingering.pop(self, None)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _wake_up(self) -> None:
        """Wake the lingering task: work came, or the sweep did."""
        waiting = self._wake
        if waiting is not None:
            self._wake = None
            self.node.kernel.lingering.pop(self, None)
            trio.lowlevel.reschedule(waiting)

    def _schedule(self) -> None:
        self._active = True
        self.node.kernel.start_cell_task(self._run, self.ref.path)

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        current_cell.set(self)
        kernel = self.node.kernel
        kernel.tasks += 1
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._kill_mode:
                    scope.cancel()
                await self._loop()
        except BaseException as exc:
            if not life.is_interrupt(exc):
                raise  # a bug in the runtime itself: fail loudly
            # KeyboardInterrupt inside an actor: the node stops, gracefully
            # (every on_stop runs), and open_node raises it.
            kernel.fatal(self, exc)
        finally:
            self._scope = None
            self._in_system = False
            self._active = False
            kernel.tasks -= 1
        # (an admin kill's cancel may find the task already on its way out)
        if scope.cancelled_caught or self._kill_mode == "fail":
            life.after_kill(self)

    async def _loop(self) -> None:
        kernel = self.node.kernel
        linger = kernel.linger
        throughput = kernel.throughput
        idle_passes = 0
        lingered = False
        while True:
            sysq = self._sysq
            if sysq:
                # A flag on the system path only (no cost per message): an
                # admin kill interrupts handlers, never supervision work.
                self._in_system = True
                await life.handle_system(self, sysq.popleft())
                self._in_system = False
                if self._state == DEAD:
                    return
                idle_passes = 0
                continue
            mailbox = self._mailbox
            if self._state != RUNNING or not mailbox:
                if idle_passes >= linger or self._state == DEAD or self._fed_remotely:
                    if not lingered and self._fed_remotely and self._state == RUNNING:
                        # Keep the task a moment longer: a peer's next ask
                        # is a network round trip away, and a new task per
                        # message costs more than this wait. (Local work
                        # needs no such wait: the passes above cover it.)
                        lingered = True
                        self._fed_remotely = False
                        await self._linger(kernel)
                        idle_passes = 0
                        continue
                    if mailbox is not None and not mailbox and not self._waiters:
                        self._mailbox = None
                    return
                idle_passes += 1
                await trio.lowlevel.checkpoint()
                continue
            idle_passes = 0
            lingered = False
            handled = 0
            full = False
            # Metrics cost one addition per batch, and two clock reads per
            # sampled batch (runtime/_counters.py), never a labelled metric.
            counts = self._counts
            started = 0.0
            if counts is not None:
                counts.countdown -= 1
                if counts.countdown <= 0:
                    started = perf_counter()
            while True:
                item = mailbox.popleft()
                if self._waiters:
                    self._admit_waiters()
                await self._deliver(item)
                handled += 1
                if not mailbox or self._sysq or self._state != RUNNING:
                    break
                if handled >= throughput:
                    full = True
                    break
            if counts is not None:
                counts.handled += handled
                self.handled += handled
                if started:
                    counts.countdown = SAMPLE_EVERY
                    counts.durations.observe((perf_counter() - started) / handled, handled)
            if full:
                await trio.lowlevel.checkpoint()

    async def _deliver(self, item: Item) -> None:
        msg, sender, reply = item
        entry = self._info.lookup(type(msg))
        if reply is not None or entry is None or entry.special:
            if self.node.kernel.tracing is not None and reply is not WATCH_NOTICE:
                await self._deliver_traced(msg, sender, reply)
            else:
                await self._deliver_slow(msg, sender, reply)
            return
        self._sender = sender
        try:
            await entry.fn(self._actor, msg)
        except BaseException as exc:
            if not life.is_failure(exc):
                raise
            life.handler_failed(self, msg, sender, exc)

    async def _deliver_traced(self, msg: Any, sender: ActorRef | None, reply: Any) -> None:
        """A handler run in its own span, a child of the sender's context."""
        if type(reply) is TraceNote:
            parent, reply = reply.trace, None
        else:
            parent = getattr(reply, "trace", None)  # an ask's or a stream's
        with self.node.kernel.tracing.handler(self.ref.path, self._cls, msg, parent):
            await self._deliver_slow(msg, sender, reply)

    async def _deliver_slow(self, msg: Any, sender: ActorRef | None, reply: Any) -> None:
        if reply is WATCH_NOTICE:
            watching = self._watching
            if watching is None or msg.ref not in watching:
                return  # unwatched after the notice was queued: Akka drops it too
            watching.discard(msg.ref)
            reply = None
        if type(msg) is PoisonPill:
            if reply is not None:
                reply.set(None)
            life.poisoned(self)
            return
        entry = self._info.lookup(type(msg))
        if entry is None:
            life.dead_letter(self, msg, sender, "unhandled")
            if self._counts is not None:
                self._counts.unhandled += 1
            if reply is not None:
                reply.fail(
                    UnhandledMessage(f"{self.ref.path} has no handler for {type(msg).__name__}")
                )
            return
        self._sender = sender
        if entry.is_channel or type(reply) is ChannelRequest:
            channel_handled(self, entry, msg, sender, reply)
            return
        if entry.is_stream:
            if isinstance(reply, StreamSink):
                actor = self._actor
                self.start_soon(pump, self, entry, actor, msg, reply)
            elif reply is None:
                life.dead_letter(self, msg, sender, "stream handler told: use ref.stream()")
            else:
                reply.fail(
                    UnhandledMessage(
                        f"{self.ref.path}.{entry.name} is a stream handler: use ref.stream()"
                    )
                )
            return
        self._current_reply = reply
        try:
            result = await entry.fn(self._actor, msg)
        except BaseException as exc:
            if not life.is_failure(exc):
                raise
            # (None if the handler took the reply over: see take_reply)
            reply, self._current_reply = self._current_reply, None
            if self.node.kernel.tracing is not None:
                self.node.kernel.tracing.failed(exc)
            if reply is not None:
                reply.fail(exc)
            life.handler_failed(self, msg, sender, exc)
            return
        reply, self._current_reply = self._current_reply, None
        if reply is not None:
            reply.set(result)
