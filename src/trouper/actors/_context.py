"""``ActorContext``: what an actor may do with the runtime (``self.ctx``).

A small public facade over the runtime's internal cell: it shows refs, never
cells, and only the operations an actor is meant to use. It does not import
the runtime (``actors/`` sits below it); it only calls the cell's documented
methods, which the runtime provides.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from ..runtime._cell import Cell
    from ..runtime._node import Node
    from ..runtime._ref import ActorRef
    from ..runtime._subscribers import Policy
    from ..runtime._timers import Timer
    from ..stores._api import Store
    from ..supervisors._strategy import ChildSpec, RestartType, Shutdown
    from ._actor import Actor


class ActorContext:
    """The actor's view of itself and of the runtime."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        return f"<ActorContext {self._cell.ref.path}>"

    @property
    def self_ref(self) -> ActorRef:
        """This actor's own ref."""
        return self._cell.ref

    @property
    def node(self) -> Node:
        """The node this actor runs on."""
        return self._cell.node

    @property
    def sender(self) -> ActorRef | None:
        """The sender of the message being handled (None from outside actors)."""
        return self._cell.sender

    @property
    def parent(self) -> ActorRef | None:
        """The supervisor of this actor (None only for the guardians)."""
        parent = self._cell.parent
        return None if parent is None else parent.ref

    @property
    def children(self) -> list[ActorRef]:
        """This actor's live children, in start order."""
        return self._cell.children

    async def spawn(
        self,
        cls: type[Actor] | ChildSpec,
        *args: Any,
        name: str | None = None,
        mailbox_size: int | None = None,
        restart: RestartType = "transient",
        shutdown: Shutdown = 5.0,
        **kwargs: Any,
    ) -> ActorRef:
        """Start a child under this actor's supervision and return its ref.

        Returns once its ``on_start`` has finished; raises ``SpawnRefused`` if
        the constructor or ``on_start`` failed (the child is then gone). A
        ``trouper.child(...)`` spec may be given instead of a class.
        """
        from ..supervisors._strategy import ChildSpec

        if isinstance(cls, ChildSpec):
            if args or kwargs:
                raise ConfigurationError("spawn(spec) takes no further arguments")
            spec = cls
            cls, args, kwargs = spec.cls, spec.args, dict(spec.kwargs)
            name, restart, shutdown = spec.name, spec.restart, spec.shutdown
            mailbox_size = spec.mailbox_size
        return await self._cell.spawn(
            cls,
            args,
            kwargs,
            name=name,
            mailbox_size=mailbox_size,
            restart=restart,
            shutdown=shutdown,
        )

    async def spawn_pool(self, cls: type[Actor], *args: Any, **options: Any) -> ActorRef:
        """A worker pool under this actor's supervision, as ``node.spawn_pool``."""
        from ..pools._spawn_pool import spawn_pool

        return await spawn_pool(self.spawn, self._cell.node.kernel.rng, cls, args, options)

    def watch(self, ref: ActorRef) -> None:
        """Receive ``Terminated(ref, reason)`` when ``ref`` stops (at once if it
        has); for an actor on another node, also when that node goes down."""
        self._cell.watch(ref)

    def unwatch(self, ref: ActorRef) -> None:
        """Stop watching ``ref``; no ``Terminated`` for it arrives afterwards."""
        self._cell.unwatch(ref)

    def send_after(self, delay: float, msg: Any) -> Timer:
        """Deliver ``msg`` to this actor after ``delay`` seconds, unless the
        timer is cancelled or the actor stops or restarts first."""
        _seconds("delay", delay, allow_zero=True)
        return self._cell.node.kernel.timers.start(self._cell, delay, msg, None)

    def every(self, interval: float, msg: Any, *, initial_delay: float | None = None) -> Timer:
        """Deliver ``msg`` every ``interval`` seconds until cancelled, stopped or restarted."""
        _seconds("interval", interval, allow_zero=False)
        first = interval if initial_delay is None else initial_delay
        _seconds("initial_delay", first, allow_zero=True)
        return self._cell.node.kernel.timers.start(self._cell, first, msg, interval)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` in this actor's own nursery. It is cancelled when
        the actor stops or restarts; if it raises, the actor fails."""
        self._cell.start_soon(fn, *args)

    async def store(self, url: str | None = None) -> Store:
        """The node's shared store for ``url`` (None: the node's default):
        one per URL per node, shared by all its actors (``node.store``)."""
        return await self._cell.node.store(url)

    def subscribe(
        self, topic: Hashable, *, buffer: int = 1000, policy: Policy = "drop-newest"
    ) -> None:
        """Receive the events published on ``topic`` (on any node, for a
        string topic) as messages, until ``unsubscribe(topic)`` or this
        actor stops; a restart keeps it, and subscribing again changes
        nothing. At most ``buffer`` events wait behind a full mailbox;
        ``policy`` as for ``node.subscribe`` (``"disconnect"`` ends it with a
        ``trouper.SubscriptionEnded`` message)."""
        self._cell.node.kernel.events.subscribe_actor(self._cell, topic, buffer, policy)

    def unsubscribe(self, topic: Hashable) -> None:
        """No more events of ``topic`` (those not yet in the mailbox are dropped)."""
        self._cell.node.kernel.events.unsubscribe_actor(self._cell, topic)

    def refuse(self, exc: BaseException) -> bool:
        """Answer the ask being handled with ``exc`` (the asker gets it
        raised, as if the handler had raised it) *without* failing this
        actor: for a request the actor refuses (bad input, a stale token)
        while its state stays good. The handler's return value then answers
        nothing. False (and nothing sent) for a tell, or once answered."""
        reply = self._cell.take_reply()
        if reply is None:
            return False
        reply.fail(exc)
        return True

    def stop(self, ref: ActorRef | None = None) -> None:
        """Stop this actor (after the current message), or one of its children.

        Stopping itself is a normal exit: a ``permanent`` actor is restarted by
        its supervisor, ``transient`` and ``temporary`` ones are not. (To stop
        after what is already queued, send it ``trouper.PoisonPill``.)
        """
        if ref is None or ref == self._cell.ref:
            self._cell.stop_self()
            return
        self._cell.stop_child(ref)


def _seconds(name: str, value: object, *, allow_zero: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        seconds = float(value)  # type: ignore[arg-type]
        ok = 0 <= seconds < math.inf and (allow_zero or seconds > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(
            f"{name} must be a finite number of seconds {bound}, not {value!r}"
        )
