"""The documented interface of a ``Cell``: what the actor context and the
layers above the runtime (remoting, the web gateway) may use of it.

A mixin of ``Cell``, kept apart so that ``_cell`` holds only the queues and
the task; everything here is part of the runtime's interface and is named
without a leading underscore.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from ..actors._actor import Actor, ClassInfo
from ..actors._messages import Terminated
from . import _lifecycle as life
from ._mailbox import ParkedItem, Waiter
from ._ref import WATCH_NOTICE, ActorRef
from ._states import DEAD, STOPPING, Event, advance

if TYPE_CHECKING:
    from ..supervisors._strategy import Shutdown
    from ._background import BackgroundTasks
    from ._cell import Cell, Item
    from ._counters import ClassCounters
    from ._node import Node


class CellOps:
    __slots__ = (
        "_active",
        "_actor",
        "_args",
        "_bg",
        "_children",
        "_cls",
        "_context",
        "_counts",
        "_current_reply",
        "_fed_remotely",
        "_gen",
        "_in_system",
        "_info",
        "_intensity",
        "_kill_mode",
        "_killed",
        "_kwargs",
        "_mailbox",
        "_mailbox_size",
        "_reason",
        "_restart",
        "_scope",
        "_sender",
        "_shutdown",
        "_start_scope",
        "_state",
        "_sysq",
        "_terminated",
        "_waiters",
        "_wake",
        "_watchers",
        "_watching",
        "handled",
        "name",
        "node",
        "parent",
        "ref",
    )

    node: Node
    parent: Cell | None
    handled: int
    ref: ActorRef
    _actor: Actor | None
    _args: tuple[Any, ...]
    _bg: BackgroundTasks | None
    _children: dict[Cell, None] | None
    _cls: type[Actor]
    _context: Any
    _counts: ClassCounters | None
    _current_reply: Any
    _info: ClassInfo
    _kwargs: dict[str, Any] | None
    _mailbox: deque[Item] | None
    _mailbox_size: int
    _reason: str
    _sender: ActorRef | None
    _shutdown: Shutdown
    _state: int
    _terminated: trio.Event | None
    _waiters: deque[Waiter] | None
    _wake: trio.lowlevel.Task | None
    _fed_remotely: bool
    _gen: int
    _watchers: set[Any] | None
    _watching: set[ActorRef] | None

    def _enqueue(self, item: Item) -> None:
        raise NotImplementedError  # in Cell

    def system(self, msg: Any) -> None:
        raise NotImplementedError  # in Cell

    # ------------------------------------------------- interface for other layers

    @property
    def dead(self) -> bool:
        return self._state == DEAD

    @property
    def reason(self) -> str:
        """Why it stopped ("normal", "killed", "error: ..."), once dead."""
        return self._reason

    @property
    def actor_class(self) -> type[Actor]:
        return self._cls

    @property
    def instance(self) -> Actor | None:
        """The live actor instance, if any (for in-process fast paths)."""
        return None if self._state == DEAD else self._actor

    @property
    def state(self) -> int:
        return self._state

    @property
    def restarts(self) -> int:
        """How many times this actor's instance was replaced (each restart
        makes a new generation of the cell)."""
        return self._gen

    @property
    def mailbox_depth(self) -> int:
        return len(self._mailbox or ()) + len(self._waiters or ())

    def take_reply(self) -> Any:
        """Take over the reply slot of the ask being handled (None for a
        tell, or once taken): the handler's return value then answers
        nothing, and the taker sets or fails it exactly once, say after
        handing it on with the message to another actor (a pool's router)."""
        reply, self._current_reply = self._current_reply, None
        return reply

    def try_deliver(self, item: Item) -> bool:
        """Into the mailbox if it has room (True); never waits. A dead actor
        takes anything (into dead letters, failing an ask)."""
        self._fed_remotely = True
        mailbox = self._mailbox
        if (
            self._state == DEAD
            or mailbox is None
            or (len(mailbox) < self._mailbox_size and not self._waiters)
        ):
            self._enqueue(item)
            return True
        return False

    def park(self, item: Item, on_admit: Callable[[], None] | None) -> None:
        """Queue ``item`` behind the full mailbox, in arrival order with the
        local senders waiting there, without waiting: ``on_admit`` runs once
        it enters the mailbox or is rejected. This is how a network reader
        delivers without ever blocking on one actor; the caller bounds what
        it parks."""
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = deque()
        waiters.append(ParkedItem(item, on_admit))

    def add_watcher(self, watcher: Any) -> str | None:
        """Add ``watcher`` (it has ``watched_stopped(ref, reason)``); if the
        actor is already dead, returns its reason and adds nothing."""
        if self._state == DEAD:
            return self._reason or "dead"
        if self._watchers is None:
            self._watchers = set()
        self._watchers.add(watcher)
        return None

    def remove_watcher(self, watcher: Any) -> None:
        if self._watchers is not None:
            self._watchers.discard(watcher)

    def watched_stopped(self, ref: ActorRef, reason: str) -> None:
        """An actor this cell watches stopped: queue its ``Terminated``."""
        if self._state != DEAD:
            self._enqueue((Terminated(ref, reason), None, WATCH_NOTICE))

    # ------------------------------------------- what the actor context offers

    @property
    def sender(self) -> ActorRef | None:
        return self._sender

    @property
    def children(self) -> list[ActorRef]:
        return [] if self._children is None else [c.ref for c in self._children]

    @property
    def context(self) -> Any:
        return self._context

    def instantiate(self) -> Actor:
        cls = self._cls
        actor = cls.__new__(cls)
        if self._context is None:
            from ..actors._context import ActorContext

            self._context = ActorContext(self)  # type: ignore[arg-type]
        actor.ctx = self._context
        actor.__init__(*self._args, **(self._kwargs or {}))  # type: ignore[misc]
        return actor

    def watch(self, ref: ActorRef) -> None:
        target = ref._cell
        if target is self:
            return
        if self._watching is None:
            self._watching = set()
        self._watching.add(ref)
        if target is None:
            ref._remote().watch(self, ref)  # type: ignore[arg-type]
            return
        reason = target.add_watcher(self)
        if reason is not None:
            self._enqueue((Terminated(ref, reason), None, WATCH_NOTICE))

    def unwatch(self, ref: ActorRef) -> None:
        if self._watching is not None:
            self._watching.discard(ref)
            if not self._watching:
                self._watching = None
        target = ref._cell
        if target is None:
            if ref._via is not None:
                ref._via.unwatch(self, ref)  # type: ignore[arg-type]
        else:
            target.remove_watcher(self)

    async def spawn(
        self,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        *,
        name: str | None,
        mailbox_size: int | None,
        restart: object,
        shutdown: object,
    ) -> ActorRef:
        from ._spawn import spawn_child

        return await spawn_child(
            self,  # type: ignore[arg-type]
            cls,
            args,
            kwargs,
            name=name,
            mailbox_size=mailbox_size,
            restart=restart,
            shutdown=shutdown,
        )

    def stop_self(self) -> None:
        life.self_stop(self)  # type: ignore[arg-type]

    def stop_child(self, ref: ActorRef) -> None:
        from .._errors import ConfigurationError
        from ._sysmsg import StopChild

        target = ref._cell
        if target is None or target.parent is not self:
            raise ConfigurationError(f"{self.ref.path} can only stop itself or its children")
        # Run by this actor's own task, like a supervision decision, so the
        # child's shutdown timeout (then a kill) applies as it does elsewhere.
        self.system(StopChild(target))

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in this actor's own nursery (see ``_background``)."""
        life.start_background(self, fn, args)  # type: ignore[arg-type]

    def _terminated_event(self) -> trio.Event:
        if self._terminated is None:
            self._terminated = trio.Event()
            if self._state == DEAD:
                self._terminated.set()
        return self._terminated

    async def wait_dead(self) -> None:
        await self._terminated_event().wait()

    def advance(self, event: Event) -> None:
        self._state = advance(self._state, event)

    @property
    def stopping(self) -> bool:
        """True once its stop has begun (or it is gone)."""
        return self._state >= STOPPING
