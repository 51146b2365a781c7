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
import math
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import attrs
import trio

from .. import _errors as errors
from .._errors import ActorNotFound, ConfigurationError, SupervisionError
from ..actors._actor import Actor
from ..supervisors._strategy import ChildSpec, OneForOne, RestartType, Strategy
from ..transports import TLSConfig
from . import _lifecycle as life
from ._cell import Cell
from ._events import DeadLetters, EventStream
from ._ref import ActorRef
from ._remote import MemberInfo, RemoteConfig, Remoting
from ._spawn_node import NodeHandle, start_node_process
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


class _Plain(Actor):
    """A parent for system actors (``/system/remote``)."""


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
        remote: RemoteConfig | None = None,
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
        # A uid tells incarnations of a path apart, also across restarts of a
        # node process: they start at a random base, so a ref to an actor of a
        # previous run never reaches its successor at the same path.
        self._uid_base = secrets.randbits(40) << 20
        self._uids = itertools.count(self._uid_base + 1)
        self._names: dict[str, Cell] = {}
        self._paths: dict[str, Cell] = {}
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
        self._remote_config = remote
        self._children_nodes: list[NodeHandle] = []
        self._remote: Remoting | None = None
        guard = (self._supervision,)
        self._user = self._fixed_cell(None, _Guardian, guard, "/user", shutdown_timeout)
        self._system_root = self._fixed_cell(None, _Guardian, guard, "/system", shutdown_timeout)
        system = self._system_root
        self._deadletter_cell = self._fixed_cell(
            system, _DeadLetterActor, (), "/system/deadletters", 5.0
        )
        self._remote_root = self._fixed_cell(system, _Plain, (), "/system/remote", 5.0)

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
        """Start a top-level actor under ``/user`` and return its ref.

        ``on=node_id`` starts it on another node of the cluster, which must
        allow its class (``allow_spawn``); its arguments travel as msgpack.
        """
        if on is not None and on != self.id:
            if self._remote is None:
                raise ConfigurationError(f"node {self.id} has no remoting: cannot spawn on {on!r}")
            if isinstance(cls, ChildSpec):
                raise ConfigurationError("spawn(on=...) takes an Actor class, not a child spec")
            return await self._remote.spawn(on, cls, args, kwargs, name, mailbox_size, 10.0)
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
        """The ref registered under ``name`` on this node or, with remoting,
        anywhere in the cluster; waits up to ``timeout`` for it to appear."""
        ref = self._find(name)
        if ref is not None:
            await trio.lowlevel.checkpoint()
            return ref
        if timeout:
            with trio.move_on_after(timeout):
                while True:
                    event = self._name_waiters.setdefault(name, trio.Event())
                    await event.wait()
                    ref = self._find(name)
                    if ref is not None:
                        return ref
        else:
            await trio.lowlevel.checkpoint()
        where = "in the cluster" if self._remote is not None else f"on node {self.id}"
        raise ActorNotFound(f"no actor named {name!r} {where}")

    def members(self) -> list[MemberInfo]:
        """This node and every node it knows, with their status."""
        if self._remote is None:
            return [MemberInfo(self.id, 0, (), "up")]
        return self._remote.members()

    async def wait_for_members(self, n: int, timeout: float | None = 10.0) -> list[MemberInfo]:
        """Wait until ``n`` nodes (this one included) are up."""
        with trio.move_on_after(math.inf if timeout is None else timeout):
            while True:
                up = [m for m in self.members() if m.status == "up"]
                if len(up) >= n:
                    return up
                if self._remote is None:
                    break
                await self._remote.changed.wait()
        raise errors.NodeDown(f"only {len(up)} of {n} nodes are up after {timeout}s")

    async def connect(self, url: str, timeout: float | None = 10.0) -> str:
        """Connect to the node at ``url`` now; returns its id. Raises
        ``HandshakeFailed`` (wrong cookie, TLS refused) or ``ConnectionLost``."""
        if self._remote is None:
            raise ConfigurationError("open_node(cookie=...) is needed to connect to other nodes")
        with trio.move_on_after(math.inf if timeout is None else timeout):
            return await self._remote.connect(url)
        raise errors.ConnectionLost(f"no connection to {url} within {timeout}s")

    async def spawn_node(
        self,
        *,
        name: str | None = None,
        allow_spawn: Sequence[str] = (),
        listen: str = "tcp://127.0.0.1:0",
        timeout: float = 30.0,
    ) -> NodeHandle:
        """Start a node process that joins this cluster; returns its handle.

        The process is reaped when this node closes.
        """
        if self._remote is None or not self.addresses:
            raise ConfigurationError("spawn_node needs a node that listens (open_node(listen=...))")
        handle = await start_node_process(
            self, name=name, allow_spawn=allow_spawn, listen=listen, timeout=timeout
        )
        self._children_nodes.append(handle)
        return handle

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
        self._wake_name(name)
        if self._remote is not None:
            self._remote.name_changed(name, cell.ref, added=True)

    def _unregister(self, name: str, cell: Cell) -> None:
        if self._names.get(name) is cell:
            del self._names[name]
            if self._remote is not None:
                self._remote.name_changed(name, cell.ref, added=False)

    def _wake_name(self, name: str) -> None:
        event = self._name_waiters.pop(name, None)
        if event is not None:
            event.set()

    def _find(self, name: str) -> ActorRef | None:
        cell = self._names.get(name)
        if cell is not None:
            return cell.ref
        return None if self._remote is None else self._remote.lookup(name)

    def _fixed_cell(
        self,
        parent: Cell | None,
        cls: type[Actor],
        args: tuple[Any, ...],
        path: str,
        shutdown: float,
    ) -> Cell:
        """A cell the node itself starts, synchronously, while it is built:
        the guardians and the system actors that exist from the first moment."""
        cell = Cell(
            self,
            parent,
            cls,
            args,
            None,
            None,
            path,
            self._next_uid(),
            self._mailbox_size,
            "permanent",
            shutdown,
        )
        cell._actor = cell._instantiate()
        cell._state = RUNNING
        if parent is not None:
            if parent._children is None:
                parent._children = {}
            parent._children[cell] = None
        self._paths[path] = cell
        self._live += 1
        return cell

    async def _system_spawn(self, cls: type[Actor], segment: str | None, *args: Any) -> ActorRef:
        """Start a system actor (under /system, or /system/remote for links)."""
        parent = self._system_root
        if segment is None:
            parent = self._remote_root
        return await parent.spawn(cls, *args, restart="transient", _segment=segment)

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
        try:
            with trio.move_on_after(self._shutdown_timeout, shield=True) as scope:
                for guardian in (self._user, self._system_root):
                    if guardian is self._system_root:
                        for handle in self._children_nodes:
                            await handle.stop()
                        if self._remote is not None:
                            await self._remote.close()
                    if guardian._state != DEAD:
                        if guardian._state < STOPPING:
                            guardian._system(life.Stop("shutdown"))
                        await guardian._terminated_event().wait()
            if scope.cancelled_caught:
                log.warning(
                    "node %s: shutdown took over %ss; killing what is left",
                    self.id,
                    self._shutdown_timeout,
                )
                # Kill, not just cancel: killed cells are finalized, so their
                # watchers hear of it and pending asks fail with ActorDead.
                for guardian in (self._user, self._system_root):
                    life.kill(guardian)
                with trio.move_on_after(1.0, shield=True):
                    for guardian in (self._user, self._system_root):
                        await guardian._terminated_event().wait()
        finally:
            # Whatever happened above, the actors' nursery must close, or
            # open_node would never exit.
            for handle in self._children_nodes:
                handle.kill()
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
    listen: str | Sequence[str] = (),
    seeds: Sequence[str] = (),
    cookie: str | bytes | None = None,
    tls: TLSConfig | None = None,
    allow_spawn: Sequence[str] = (),
    **remote_options: Any,
) -> AsyncIterator[Node]:
    """Run a node for the duration of the block.

    Leaving the block stops every actor, children first and each level in
    reverse start order, running ``on_stop``; whatever has not stopped after
    ``shutdown_timeout`` seconds is cancelled.

    With ``cookie`` (and usually ``listen`` or ``seeds``) the node joins a
    cluster: ``listen`` URLs (``tcp://127.0.0.1:0``...), ``seeds`` to dial,
    ``tls`` for ``tls://`` links, ``allow_spawn`` ("module:Class" globs) for
    remote spawns. ``remote_options`` tune the links (``heartbeat_interval``,
    ``max_frame_size``, ``max_pending_asks``, ``rate_limit``, ``down_after``...).
    """
    remote = _remote_config(listen, seeds, cookie, tls, allow_spawn, remote_options)
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
        remote=remote,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node._host_actors)
            nursery.start_soon(node._watch_failure, name=f"trouper {node.id} root")
            try:
                if remote is not None:
                    node._remote = Remoting(node, remote)
                    await node._remote.start()
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


def _remote_config(
    listen: str | Sequence[str],
    seeds: Sequence[str],
    cookie: str | bytes | None,
    tls: TLSConfig | None,
    allow_spawn: Sequence[str],
    options: dict[str, Any],
) -> RemoteConfig | None:
    listen = (listen,) if isinstance(listen, str) else tuple(listen)
    if cookie is None:
        if listen or seeds or options:
            raise ConfigurationError("a node that joins a cluster needs cookie=...")
        return None
    if isinstance(cookie, str):
        cookie = cookie.encode()
    try:
        return RemoteConfig(
            cookie=cookie,
            listen=listen,
            seeds=tuple(seeds),
            tls=tls,
            allow_spawn=tuple(allow_spawn),
            **options,
        )
    except TypeError as exc:
        raise ConfigurationError(f"unknown node option: {exc}") from None


def run(main: Callable[[Node], Awaitable[T]], **options: Any) -> T:
    """``trio.run`` a node: opens it with ``options`` and returns ``await main(node)``."""

    async def _main() -> T:
        async with open_node(**options) as node:
            return await main(node)

    return trio.run(_main)
