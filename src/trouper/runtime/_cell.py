"""``Cell``: the runtime's record of one actor, and its ``ActorContext``.

A cell owns a bounded mailbox of ``(msg, sender, reply)`` items and an
unbounded queue of system messages beside it. It holds a Trio task only while
it has work: the first item that arrives while it is idle starts a task in the
node's nursery; the task drains the queues in batches (one scheduler
checkpoint per batch) and ends when both are empty, after lingering for a
couple of scheduler passes so that ping-pong patterns (sequential asks) do not
pay for a new task per message. An idle cell holds no task and no deque.

Failures never unwind across cells: a handler's exception suspends the cell
and becomes a system message to its parent, which decides (see
``_lifecycle``). Only a failure past the top guardian reaches the node.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ActorDead, ConfigurationError, NameTaken, SpawnRefused, UnhandledMessage
from ..actors._actor import Actor, ClassInfo, Entry, class_info
from ..actors._messages import Terminated
from ..supervisors._strategy import ChildSpec, RestartIntensity, RestartType
from . import _lifecycle as life
from ._ref import WATCH_NOTICE, ActorRef, StreamFailed, StreamRequest, current_cell
from ._states import DEAD, NEW, RUNNING, STOPPING
from ._timers import Timer

if TYPE_CHECKING:
    from ._node import Node

log = logging.getLogger("trouper")

Item = tuple[Any, ActorRef | None, Any]


class _SpaceWaiter:
    __slots__ = ("item", "task")

    def __init__(self, task: trio.lowlevel.Task, item: Item) -> None:
        self.task = task
        self.item = item


class Cell:
    """One actor's cell; also its ``ActorContext`` (``self.ctx`` inside it)."""

    __slots__ = (
        "_active",
        "_actor",
        "_args",
        "_bg",
        "_children",
        "_cls",
        "_current_reply",
        "_gen",
        "_info",
        "_intensity",
        "_kill_mode",
        "_kwargs",
        "_mailbox",
        "_mailbox_size",
        "_reason",
        "_restart",
        "_scope",
        "_sender",
        "_shutdown",
        "_state",
        "_sysq",
        "_terminated",
        "_waiters",
        "_watchers",
        "_watching",
        "name",
        "node",
        "parent",
        "ref",
    )

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
        shutdown: float,
    ) -> None:
        self.node = node
        self.parent = parent
        self.name = name
        self.ref = ActorRef(node.id, path, uid, self)
        self._cls = cls
        self._args = args
        self._kwargs = kwargs
        self._info: ClassInfo = class_info(cls)
        self._actor: Actor | None = None
        self._mailbox: deque[Item] | None = None
        self._mailbox_size = mailbox_size
        self._sysq: deque[Any] | None = None
        self._waiters: deque[_SpaceWaiter] | None = None
        self._state = NEW
        self._active = False
        self._scope: trio.CancelScope | None = None
        self._gen = 0
        self._children: dict[Cell, None] | None = None
        self._watchers: set[Any] | None = None  # Cells and RemoteWatchers
        self._watching: set[ActorRef] | None = None
        self._bg: life.BackgroundTasks | None = None
        self._sender: ActorRef | None = None
        self._current_reply: Any = None
        self._restart: RestartType = restart
        self._shutdown = shutdown
        self._intensity: RestartIntensity | None = None
        self._terminated: trio.Event | None = None
        self._reason = ""
        self._kill_mode = ""

    def __repr__(self) -> str:
        return f"<Cell {self.ref.path} state={self._state}>"

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
        if not self._active and self._state == RUNNING:
            self._schedule()

    def _system(self, msg: Any) -> None:
        """Queue a system message: never bounded, never dropped while alive."""
        sysq = self._sysq
        if sysq is None:
            sysq = self._sysq = deque()
        sysq.append(msg)
        if not self._active:
            self._schedule()

    async def _wait_for_space(self, item: Item) -> None:
        """Park until the cell hands ``item`` into its mailbox (FIFO)."""
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        waiter = _SpaceWaiter(trio.lowlevel.current_task(), item)
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
            trio.lowlevel.reschedule(waiter.task)

    def _schedule(self) -> None:
        self._active = True
        self.node._nursery.start_soon(self._run, name=self.ref.path)

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        current_cell.set(self)
        node = self.node
        node._tasks += 1
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                if self._kill_mode:
                    scope.cancel()
                await self._loop()
        finally:
            self._scope = None
            self._active = False
            node._tasks -= 1
        if scope.cancelled_caught:
            life.after_kill(self)

    async def _loop(self) -> None:
        linger = self.node._linger
        throughput = self.node._throughput
        idle_passes = 0
        while True:
            sysq = self._sysq
            if sysq:
                await life.handle_system(self, sysq.popleft())
                if self._state == DEAD:
                    return
                idle_passes = 0
                continue
            mailbox = self._mailbox
            if self._state != RUNNING or not mailbox:
                if idle_passes >= linger or self._state == DEAD:
                    if mailbox is not None and not mailbox:
                        self._mailbox = None
                    return
                idle_passes += 1
                await trio.lowlevel.checkpoint()
                continue
            idle_passes = 0
            handled = 0
            while True:
                item = mailbox.popleft()
                if self._waiters:
                    self._admit_waiters()
                await self._deliver(item)
                handled += 1
                if not mailbox or self._sysq or self._state != RUNNING:
                    break
                if handled >= throughput:
                    await trio.lowlevel.checkpoint()
                    break

    async def _deliver(self, item: Item) -> None:
        msg, sender, reply = item
        entry = self._info.lookup(type(msg))
        if reply is not None or entry is None or entry.is_stream:
            await self._deliver_slow(entry, msg, sender, reply)
            return
        self._sender = sender
        try:
            await entry.fn(self._actor, msg)
        except Exception as exc:
            life.dead_letter(self, msg, sender, f"failed: {exc!r}")
            life.crash(self, exc)

    async def _deliver_slow(
        self, entry: Entry | None, msg: Any, sender: ActorRef | None, reply: Any
    ) -> None:
        if reply is WATCH_NOTICE:
            watching = self._watching
            if watching is None or msg.ref not in watching:
                return  # unwatched after the notice was queued: Akka drops it too
            watching.discard(msg.ref)
            reply = None
        if entry is None:
            life.dead_letter(self, msg, sender, "unhandled")
            if reply is not None:
                reply.fail(
                    UnhandledMessage(f"{self.ref.path} has no handler for {type(msg).__name__}")
                )
            return
        self._sender = sender
        if entry.is_stream:
            if type(reply) is StreamRequest:
                self.start_soon(self._pump, entry, msg, reply)
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
        except Exception as exc:
            self._current_reply = None
            if reply is not None:
                reply.fail(exc)
            life.dead_letter(self, msg, sender, f"failed: {exc!r}")
            life.crash(self, exc)
            return
        self._current_reply = None
        if reply is not None:
            reply.set(result)

    async def _pump(self, entry: Entry, msg: Any, request: StreamRequest) -> None:
        send = request.send
        actor = self._actor
        agen = entry.fn(actor, msg)
        async with send:
            try:
                async for value in agen:
                    await send.send(value)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the consumer left: the generator is closed, nothing failed
            except Exception as exc:
                # The actor fails at once, like any other handler (so nothing
                # it receives after this is handled by the failed instance),
                # then the consumer gets the error.
                life.dead_letter(self, msg, None, f"failed: {exc!r}")
                if self._state == RUNNING and self._actor is actor:
                    life.crash(self, exc)
                failed = StreamFailed(exc)
                try:
                    send.send_nowait(failed)
                except trio.WouldBlock:
                    with trio.move_on_after(self._shutdown):
                        await send.send(failed)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                return
            finally:
                await agen.aclose()
            try:
                await send.send(life.STREAM_END)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # ------------------------------------------------------- the ActorContext API

    @property
    def self_ref(self) -> ActorRef:
        """This actor's own ref."""
        return self.ref

    @property
    def sender(self) -> ActorRef | None:
        """The sender of the message being handled (None from outside actors)."""
        return self._sender

    @property
    def children(self) -> list[ActorRef]:
        """This actor's live children, in start order."""
        return [] if self._children is None else [c.ref for c in self._children]

    async def spawn(
        self,
        cls: type[Actor] | ChildSpec,
        *args: Any,
        name: str | None = None,
        mailbox_size: int | None = None,
        restart: RestartType = "transient",
        shutdown: float = 5.0,
        _segment: str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Start a child under this actor's supervision and return its ref.

        Returns once its ``on_start`` has finished; raises ``SpawnRefused`` if
        the constructor or ``on_start`` failed (the child is then gone).
        """
        if isinstance(cls, ChildSpec):
            spec = cls
            cls, args, kwargs = spec.cls, spec.args, dict(spec.kwargs)
            name, restart, shutdown = spec.name, spec.restart, spec.shutdown
            mailbox_size = spec.mailbox_size
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise ConfigurationError(f"spawn needs an Actor subclass, got {cls!r}")
        if self._state >= STOPPING:
            raise SpawnRefused(f"{self.ref.path} is stopping; it cannot spawn {cls.__name__}")
        node = self.node
        uid = node._next_uid()
        if name is None:
            segment = _segment or f"${uid - node._uid_base:x}"
        else:
            if not name or "/" in name or name.startswith("$"):
                raise ConfigurationError(f"invalid actor name {name!r}")
            if name in node._names:
                raise NameTaken(f"the name {name!r} is taken on node {node.id}")
            segment = name
        size = node._mailbox_size if mailbox_size is None else mailbox_size
        if size < 1:
            raise ConfigurationError("mailbox_size must be at least 1")
        cell = Cell(
            node,
            self,
            cls,
            args,
            kwargs or None,
            name,
            f"{self.ref.path}/{segment}",
            uid,
            size,
            restart,
            shutdown,
        )
        try:
            cell._actor = cell._instantiate()
        except Exception as exc:
            raise SpawnRefused(f"{cls.__name__}({args!r}) failed: {exc!r}") from exc
        if self._children is None:
            self._children = {}
        self._children[cell] = None
        if name is not None:
            node._register(name, cell)
        node._paths[cell.ref.path] = cell
        node._live += 1
        if cell._info.has_on_start:
            done = life.Done()
            cell._system(life.Start(None, done, initial=True))
            await done.wait()
            if done.error is not None:
                raise SpawnRefused(
                    f"{cell.ref.path} failed to start: {done.error!r}"
                ) from done.error
        else:
            cell._state = RUNNING
            await trio.lowlevel.checkpoint_if_cancelled()
        return cell.ref

    def _instantiate(self) -> Actor:
        cls = self._cls
        actor = cls.__new__(cls)
        actor.ctx = self
        actor.__init__(*self._args, **(self._kwargs or {}))  # type: ignore[misc]
        return actor

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, reason)`` when ``ref`` stops (at once if it
        has); for an actor on another node, also when that node goes down."""
        target = ref._cell
        if target is self:
            return
        if self._watching is None:
            self._watching = set()
        self._watching.add(ref)
        if target is None:
            ref._remote().watch(self, ref)
            return
        if target._state == DEAD:
            self._enqueue((Terminated(ref, target._reason), None, WATCH_NOTICE))
            return
        if target._watchers is None:
            target._watchers = set()
        target._watchers.add(self)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``; no ``Terminated`` for it arrives afterwards."""
        if self._watching is not None:
            self._watching.discard(ref)
        target = ref._cell
        if target is None:
            if ref._via is not None:
                ref._via.unwatch(self, ref)
        elif target._watchers is not None:
            target._watchers.discard(self)

    def send_after(self, delay: float, msg: Any) -> Timer:
        """Deliver ``msg`` to this actor after ``delay`` seconds, unless the
        timer is cancelled or the actor stops or restarts first."""
        return self.node._timers.start(self, delay, msg, None)

    def every(self, interval: float, msg: Any, *, initial_delay: float | None = None) -> Timer:
        """Deliver ``msg`` every ``interval`` seconds until cancelled, stopped or restarted."""
        if interval <= 0:
            raise ConfigurationError("every() needs a positive interval")
        first = interval if initial_delay is None else initial_delay
        return self.node._timers.start(self, first, msg, interval)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in this actor's own nursery. It is cancelled when
        the actor stops or restarts; if it raises, the actor fails."""
        if self._state == DEAD:
            raise ActorDead(f"{self.ref.path} is dead")
        if self._bg is None:
            self._bg = life.BackgroundTasks(self)
            self.node._nursery.start_soon(self._bg.run, name=f"{self.ref.path} (tasks)")
        self._bg.start_soon(fn, args)

    def stop(self, ref: ActorRef | None = None) -> None:
        """Stop this actor (after the current message), or one of its children.

        Stopping itself is a normal exit: a ``permanent`` actor is restarted by
        its supervisor, ``transient`` and ``temporary`` ones are not.
        """
        if ref is None or ref == self.ref:
            self._system(life.SelfStop(self._gen))
            return
        target = ref._local()
        if target.parent is not self:
            raise ConfigurationError(f"{self.ref.path} can only stop itself or its children")
        # Run by this actor's own task, like a supervision decision, so the
        # child's shutdown timeout (then a kill) applies as it does elsewhere.
        self._system(life.StopChild(target))

    # -------------------------------------------------------------- helpers

    def _watched_stopped(self, ref: ActorRef, reason: str) -> None:
        """An actor this cell watches stopped: queue its ``Terminated``."""
        if self._state != DEAD:
            self._enqueue((Terminated(ref, reason), None, WATCH_NOTICE))

    def _terminated_event(self) -> trio.Event:
        if self._terminated is None:
            self._terminated = trio.Event()
            if self._state == DEAD:
                self._terminated.set()
        return self._terminated
