"""``Node``, ``open_node`` and ``run``: the root of an actor tree.

The node owns the root nursery. Every cell task, background host and the
timer task run in it; a cell's failure is a supervision message, never an
exception in this nursery. The only exception that does reach it is a
failure past the ``/user`` guardian, which leaves ``open_node`` as a
``BaseExceptionGroup`` (decided here, once: an exception raised by the body
of ``async with open_node()`` alone comes out unwrapped, as if the node were
not there).
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

from .._errors import ActorNotFound, ConfigurationError, SupervisionError
from ..actors._actor import Actor
from ..supervisors._strategy import ChildSpec, OneForOne, RestartType, Strategy
from . import _lifecycle as life
from ._cell import Cell
from ._events import DeadLetters, EventStream
from ._ref import ActorRef
from ._states import DEAD, RUNNING, STOPPING
from ._timers import TimerService

log = logging.getLogger("trouper")

T = TypeVar("T")


@attrs.frozen
class NodeStats:
    """A snapshot of a node's counters (``node.stats()``)."""

    node_id: str
    actors: int
    tasks: int
    names: int
    restarts: int
    dead_letters: int
    timers: int


class _Guardian(Actor):
    def __init__(self, supervision: Strategy) -> None:
        self.supervision = supervision


class _DeadLetterActor(Actor):
    async def receive(self, msg: Any) -> None:
        self.ctx.node._dead_letters.record(msg, self.ctx.sender, self.ctx.self_ref, "sent")


class Registry:
    """The names on this node (``node.registry``)."""

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    def get(self, name: str) -> ActorRef | None:
        cell = self._node._names.get(name)
        return None if cell is None else cell.ref

    def names(self) -> list[str]:
        return sorted(self._node._names)

    def __contains__(self, name: object) -> bool:
        return name in self._node._names

    def __len__(self) -> int:
        return len(self._node._names)


class Node:
    """A running trouper node: spawn actors, look them up, stop them."""

    def __init__(
        self,
        *,
        name: str | None,
        mailbox_size: int,
        throughput: int,
        linger: int,
        shutdown_timeout: float,
        supervision: Strategy | None,
        seed: int | None,
    ) -> None:
        if mailbox_size < 1 or throughput < 1 or linger < 0 or shutdown_timeout < 0:
            raise ConfigurationError("mailbox_size and throughput must be >= 1, linger >= 0")
        self.id = name or f"node-{secrets.token_hex(4)}"
        self.addresses: tuple[str, ...] = ()
        self._nursery: trio.Nursery = None  # type: ignore[assignment]  # set by _host_actors
        self._host_scope = trio.CancelScope(shield=True)
        self._mailbox_size = mailbox_size
        self._throughput = throughput
        self._linger = linger
        self._shutdown_timeout = shutdown_timeout
        self._supervision = supervision or OneForOne()
        self._rng = random.Random(seed)
        self._uids = itertools.count(1)
        self._names: dict[str, Cell] = {}
        self._name_waiters: dict[str, trio.Event] = {}
        self._live = 0
        self._tasks = 0
        self._restarts = 0
        self._events = EventStream()
        self._dead_letters = DeadLetters(self._events)
        self._timers = TimerService()
        self._failure: BaseException | None = None
        self._failed = trio.Event()
        self.registry = Registry(self)
        self._user = self._guardian("/user")
        self._system_root = self._guardian("/system")
        self._deadletter_cell = self._system_cell(_DeadLetterActor, "deadletters")

    def __repr__(self) -> str:
        return f"<Node {self.id} actors={self._live}>"

    # ------------------------------------------------------------ public API

    @property
    def dead_letters(self) -> DeadLetters:
        """Counted dead letters; ``subscribe()`` to watch them."""
        return self._dead_letters

    @property
    def dead_letters_ref(self) -> ActorRef:
        """``/system/deadletters``: what is told to it is recorded as a dead letter."""
        return self._deadletter_cell.ref

    async def spawn(
        self,
        cls: type[Actor] | ChildSpec,
        *args: Any,
        name: str | None = None,
        mailbox_size: int | None = None,
        restart: RestartType = "transient",
        shutdown: float = 5.0,
        on: str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Start a top-level actor under ``/user`` and return its ref."""
        if on is not None and on != self.id:
            raise ConfigurationError(f"node {on!r} is not reachable from {self.id}")
        return await self._user.spawn(
            cls,
            *args,
            name=name,
            mailbox_size=mailbox_size,
            restart=restart,
            shutdown=shutdown,
            **kwargs,
        )

    async def stop(self, ref: ActorRef) -> None:
        """Stop the actor (children first, then its ``on_stop``) and wait until it is gone."""
        cell = ref._local()
        if cell.parent is None:
            raise ConfigurationError("guardians stop with the node")
        await life.stop_child(cell.parent, cell, "normal")

    async def lookup(self, name: str, timeout: float | None = None) -> ActorRef:
        """The ref registered under ``name``; waits up to ``timeout`` for it to appear."""
        cell = self._names.get(name)
        if cell is not None:
            await trio.lowlevel.checkpoint()
            return cell.ref
        if timeout:
            with trio.move_on_after(timeout):
                while True:
                    event = self._name_waiters.setdefault(name, trio.Event())
                    await event.wait()
                    cell = self._names.get(name)
                    if cell is not None:
                        return cell.ref
        else:
            await trio.lowlevel.checkpoint()
        raise ActorNotFound(f"no actor named {name!r} on node {self.id}")

    def publish(self, topic: Hashable, msg: Any) -> int:
        """Offer ``msg`` to the subscribers of ``topic``; returns how many took it."""
        return self._events.publish(topic, msg)

    def subscribe(self, topic: Hashable, buffer: int = 1000) -> Any:
        """``async with node.subscribe(topic) as events: async for msg in events: ...``"""
        return self._events.subscribe(topic, buffer)

    def stats(self) -> NodeStats:
        return NodeStats(
            node_id=self.id,
            actors=self._live,
            tasks=self._tasks,
            names=len(self._names),
            restarts=self._restarts,
            dead_letters=self._dead_letters.count,
            timers=len(self._timers),
        )

    # -------------------------------------------------------------- internals

    def _next_uid(self) -> int:
        return next(self._uids)

    def _register(self, name: str, cell: Cell) -> None:
        self._names[name] = cell
        event = self._name_waiters.pop(name, None)
        if event is not None:
            event.set()

    def _unregister(self, name: str, cell: Cell) -> None:
        if self._names.get(name) is cell:
            del self._names[name]

    def _guardian(self, path: str) -> Cell:
        cell = Cell(
            self,
            None,
            _Guardian,
            (self._supervision,),
            None,
            None,
            path,
            self._next_uid(),
            self._mailbox_size,
            "permanent",
            self._shutdown_timeout,
        )
        cell._actor = cell._instantiate()
        cell._state = RUNNING
        self._live += 1
        return cell

    def _system_cell(self, cls: type[Actor], segment: str) -> Cell:
        parent = self._system_root
        cell = Cell(
            self,
            parent,
            cls,
            (),
            None,
            None,
            f"{parent.ref.path}/{segment}",
            self._next_uid(),
            self._mailbox_size,
            "permanent",
            5.0,
        )
        cell._actor = cell._instantiate()
        cell._state = RUNNING
        parent._children = {cell: None}
        self._live += 1
        return cell

    def _fatal(self, cell: Cell, exc: BaseException | None) -> None:
        """A guardian failed: the node fails (after stopping what it can)."""
        if self._failure is None:
            self._failure = exc or SupervisionError(f"{cell.ref.path} exited")
            self._failed.set()

    async def _host_actors(self, task_status: trio.TaskStatus[None]) -> None:
        """Host the nursery every cell task runs in.

        It is shielded from the caller's cancellation, so that leaving
        ``open_node`` because of a cancellation still stops the actors
        gracefully (their tasks must run for that); ``_shutdown`` cancels it.
        """
        with self._host_scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._timers.run, name=f"trouper {self.id} timers")
                task_status.started()
                await trio.sleep_forever()

    async def _watch_failure(self) -> None:
        # Raising here cancels the body of ``open_node``; its ``finally`` then
        # stops the remaining actors gracefully before the group comes out.
        await self._failed.wait()
        assert self._failure is not None
        raise self._failure

    async def _shutdown(self) -> None:
        """Stop /user then /system, children first; cancel what outlives the timeout."""
        with trio.move_on_after(self._shutdown_timeout, shield=True) as scope:
            for guardian in (self._user, self._system_root):
                if guardian._state != DEAD:
                    if guardian._state < STOPPING:
                        guardian._system(life.Stop("shutdown"))
                    await guardian._terminated_event().wait()
        if scope.cancelled_caught:
            log.warning(
                "node %s: shutdown took over %ss; cancelling", self.id, self._shutdown_timeout
            )
        self._host_scope.cancel()


@asynccontextmanager
async def open_node(
    name: str | None = None,
    *,
    mailbox_size: int = 1000,
    throughput: int = 256,
    linger: int = 2,
    shutdown_timeout: float = 10.0,
    supervision: Strategy | None = None,
    seed: int | None = None,
) -> AsyncIterator[Node]:
    """Run a node for the duration of the block.

    Leaving the block stops every actor, children first and each level in
    reverse start order, running ``on_stop``; whatever has not stopped after
    ``shutdown_timeout`` seconds is cancelled.
    """
    body_exc: BaseException | None = None
    unwrap: BaseException | None = None
    node = Node(
        name=name,
        mailbox_size=mailbox_size,
        throughput=throughput,
        linger=linger,
        shutdown_timeout=shutdown_timeout,
        supervision=supervision,
        seed=seed,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node._host_actors)
            nursery.start_soon(node._watch_failure, name=f"trouper {node.id} root")
            try:
                yield node
            except BaseException as exc:
                body_exc = exc
                raise
            finally:
                await node._shutdown()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_exc is None or len(group.exceptions) != 1 or group.exceptions[0] is not body_exc:
            raise
        unwrap = body_exc
    if unwrap is not None:
        try:
            raise unwrap
        finally:
            unwrap = body_exc = None


def run(main: Callable[[Node], Awaitable[T]], **options: Any) -> T:
    """``trio.run`` a node: opens it with ``options`` and returns ``await main(node)``."""

    async def _main() -> T:
        async with open_node(**options) as node:
            return await main(node)

    return trio.run(_main)
