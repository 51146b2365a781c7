"""``Node``: the root of an actor tree, and what a program asks of it.

The node owns the guardians (``/user`` for what the program spawns,
``/system`` for what the runtime and its layers spawn) and a ``Kernel``
with the shared machinery. Everything about other nodes goes through its
remote layer, if it has one (``open_node(cookie=...)``); without one it is
an embedded node with no network at all.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import trio

from .. import _errors as errors
from .._errors import ActorNotFound, ConfigurationError
from ..actors._actor import Actor
from ..supervisors._strategy import ChildSpec, OneForOne, RestartType, Shutdown, Strategy
from ._kernel import Kernel
from ._names import Registry
from ._spawn import fixed_cell, spawn_child
from ._spi import RemoteLayer

if TYPE_CHECKING:
    from ..services import Breaker, ConsistentHash, Retry
    from ..stores import Store
    from ._events import DeadLetters, EventStatistics
    from ._ref import ActorRef
    from ._subscribers import Policy, Subscription

T = TypeVar("T")


@attrs.frozen
class NodeStats:
    """A snapshot of a node's counters (``node.stats()``)."""

    node_id: str
    actors: int
    #: Cell tasks at work (a cell fed from the network keeps its task a
    #: moment after its last message: those are counted in ``lingering``).
    tasks: int
    names: int
    restarts: int
    dead_letters: int
    timers: int
    lingering: int = 0


@attrs.frozen
class MemberInfo:
    """One node of the cluster, as ``node.members()`` reports it."""

    node_id: str
    incarnation: int
    addresses: tuple[str, ...]
    status: str


class NodeHandle(Protocol):
    """A node process started by ``node.spawn_node`` (see ``trouper.NodeHandle``)."""

    id: str
    addresses: tuple[str, ...]

    @property
    def pid(self) -> int: ...

    @property
    def running(self) -> bool: ...

    async def stop(self, timeout: float = 10.0) -> int | None: ...

    def kill(self) -> None: ...


class _Guardian(Actor):
    def __init__(self, supervision: Strategy) -> None:
        self.supervision = supervision


class _DeadLetterActor(Actor):
    async def receive(self, msg: Any) -> None:
        self.ctx.node.dead_letters.record(msg, self.ctx.sender, self.ctx.self_ref, "sent")


def _finite(name: str, value: object, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= minimum:
        raise ConfigurationError(f"{name} must be a number >= {minimum}, not {value!r}")
    if value == math.inf:
        raise ConfigurationError(f"{name} must be finite")
    return float(value)


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, not {value!r}")
    return value


class Node:
    """A running trouper node: spawn actors, look them up, stop them."""

    def __init__(
        self,
        *,
        name: str | None = None,
        mailbox_size: int = 1000,
        throughput: int = 256,
        linger: int = 2,
        shutdown_timeout: float = 10.0,
        supervision: Strategy | None = None,
        seed: int | None = None,
        metrics: bool = True,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 255):
            raise ConfigurationError(f"a node name is 1 to 255 characters, not {name!r}")
        if supervision is not None and not isinstance(supervision, Strategy):
            raise ConfigurationError(f"supervision must be a Strategy, not {supervision!r}")
        if not isinstance(metrics, bool):
            raise ConfigurationError(f"metrics must be True or False, not {metrics!r}")
        self.id = name or f"node-{secrets.token_hex(4)}"
        self.addresses: tuple[str, ...] = ()
        self.shutdown_timeout = _finite("shutdown_timeout", shutdown_timeout, 0)
        self.kernel = Kernel(
            self.id,
            mailbox_size=_count("mailbox_size", mailbox_size, 1),
            throughput=_count("throughput", throughput, 1),
            linger=_count("linger", linger, 0),
            supervision=supervision or OneForOne(),
            seed=seed,
            metrics=metrics,
        )
        self.registry = Registry(self.kernel.names, self.kernel.groups)
        self.remote: RemoteLayer | None = None
        #: The node's services state (breakers, budgets, running calls),
        #: made and used by ``trouper.services``; the runtime never reads it.
        self.services: Any = None
        #: The admin endpoint (``open_node(admin=...)``), made and used by
        #: ``trouper.observability``; the runtime never reads it.
        self.admin: Any = None
        #: The node's shared stores, made and used by ``trouper.stores``.
        self.stores: Any = None
        guard = (self.kernel.supervision,)
        self._user = fixed_cell(self, None, _Guardian, guard, "/user", self.shutdown_timeout)
        system = fixed_cell(self, None, _Guardian, guard, "/system", self.shutdown_timeout)
        self._system = system
        self._deadletters = fixed_cell(
            self, system, _DeadLetterActor, (), "/system/deadletters", 5.0
        )

    def __repr__(self) -> str:
        return f"<Node {self.id} actors={self.kernel.live}>"

    @property
    def admin_address(self) -> str | None:
        """The admin endpoint's bound ``HOST:PORT`` (port 0 resolved), if it runs."""
        return None if self.admin is None else str(self.admin.address)

    def attach_remote(self, layer: RemoteLayer) -> None:
        """Plug in the remote layer (``open_node`` does, given a cookie)."""
        if self.remote is not None:
            raise ConfigurationError(f"node {self.id} has a remote layer already")
        self.remote = layer
        self.registry._attach(layer)
        self.kernel.names.listener = layer.name_changed
        self.kernel.groups.listener = layer.group_changed

    # ------------------------------------------------------------ actors

    @property
    def dead_letters(self) -> DeadLetters:
        """Counted dead letters; ``subscribe()`` to watch them."""
        return self.kernel.dead_letters

    @property
    def dead_letters_ref(self) -> ActorRef:
        """``/system/deadletters``: what is told to it is recorded as a dead letter."""
        return self._deadletters.ref

    async def spawn(
        self,
        cls: type[Actor] | ChildSpec,
        *args: Any,
        name: str | None = None,
        mailbox_size: int | None = None,
        restart: RestartType = "transient",
        shutdown: Shutdown = 5.0,
        on: str | None = None,
        **kwargs: Any,
    ) -> ActorRef:
        """Start a top-level actor under ``/user`` and return its ref.

        ``on=node_id`` starts it on another node of the cluster, which must
        allow its class (``allow_spawn``); its arguments travel as msgpack.
        """
        if isinstance(cls, ChildSpec):
            if args or kwargs:
                raise ConfigurationError("spawn(spec) takes no further arguments")
            spec = cls
            cls, args, kwargs = spec.cls, spec.args, dict(spec.kwargs)
            name, restart, shutdown = spec.name, spec.restart, spec.shutdown
            mailbox_size = spec.mailbox_size
        if on is not None and on != self.id:
            if self.remote is None:
                raise ConfigurationError(f"node {self.id} has no remoting: cannot spawn on {on!r}")
            return await self.remote.spawn(on, cls, args, kwargs, name, mailbox_size, 10.0)
        return await spawn_child(
            self._user,
            cls,
            args,
            kwargs,
            name=name,
            mailbox_size=mailbox_size,
            restart=restart,
            shutdown=shutdown,
        )

    async def spawn_pool(self, cls: type[Actor], *args: Any, **options: Any) -> ActorRef:
        """A pool of ``cls`` workers under ``/user`` behind one ref that routes
        (options and routings: docs/pools.md); other arguments go to each worker."""
        from ..pools._spawn_pool import spawn_pool

        return await spawn_pool(self.spawn, self.kernel.rng, cls, args, options)

    async def stop(self, ref: ActorRef) -> None:
        """Stop the actor (children first, then its ``on_stop``) and wait until
        it is gone; for an actor of another node, until that node says so."""
        await self._end(ref, kill=False)

    async def kill(self, ref: ActorRef) -> None:
        """Kill the actor at once (OTP ``brutal_kill``: no ``on_stop``, its
        children killed too) and wait until it is gone. It is not restarted."""
        await self._end(ref, kill=True)

    async def _end(self, ref: ActorRef, *, kill: bool) -> None:
        from . import _lifecycle as life
        from ._supervision import stop_child

        cell = ref._cell
        if cell is None:
            if ref._via is None:
                raise ConfigurationError(f"{ref!r} is not reachable from node {self.id}")
            await ref._via.stop(ref, kill=kill)
            return
        if cell.node is not self:
            raise ConfigurationError(f"{ref!r} is an actor of node {cell.node.id}, not {self.id}")
        if cell.parent is None:
            raise ConfigurationError("guardians stop with the node")
        if kill:
            life.kill(cell)
            await cell.wait_dead()
        else:
            await stop_child(cell.parent, cell, "normal")

    async def lookup(self, name: str, timeout: float | None = None) -> ActorRef:
        """The ref registered under ``name`` on this node or, with remoting,
        anywhere in the cluster; waits up to ``timeout`` for it to appear."""
        ref = self.registry.get(name)
        if ref is not None:
            await trio.lowlevel.checkpoint()
            return ref
        if timeout:
            with trio.move_on_after(timeout):
                while True:
                    await self.kernel.names.wait(name)
                    ref = self.registry.get(name)
                    if ref is not None:
                        return ref
        else:
            await trio.lowlevel.checkpoint()
        where = "in the cluster" if self.remote is not None else f"on node {self.id}"
        raise ActorNotFound(f"no actor named {name!r} {where}")

    async def store(self, url: str | None = None) -> Store:
        """The node's one shared store for ``url`` (None: its default); docs/stores.md."""
        from ..stores._shared import shared_stores

        return await shared_stores(self).get(url)

    # ----------------------------------------------------------- cluster

    def members(self) -> list[MemberInfo]:
        """This node and every node it knows, with their status."""
        if self.remote is None:
            return [MemberInfo(self.id, 0, (), "up")]
        return self.remote.members()

    async def wait_for_members(self, n: int, timeout: float | None = 10.0) -> list[MemberInfo]:
        """Wait until ``n`` nodes (this one included) are up."""
        with trio.move_on_after(math.inf if timeout is None else timeout):
            while True:
                up = [m for m in self.members() if m.status == "up"]
                if len(up) >= n:
                    return up
                if self.remote is None:
                    break
                await self.remote.wait_changed()
        raise errors.NodeDown(f"only {len(up)} of {n} nodes are up after {timeout}s")

    async def connect(self, url: str, timeout: float | None = 10.0) -> str:
        """Connect to the node at ``url`` now; returns its id. Raises
        ``HandshakeFailed`` (wrong cookie, TLS refused) or ``ConnectionLost``."""
        if self.remote is None:
            raise ConfigurationError("open_node(cookie=...) is needed to connect to other nodes")
        with trio.move_on_after(math.inf if timeout is None else timeout):
            return await self.remote.connect(url)
        raise errors.ConnectionLost(f"no connection to {url} within {timeout}s")

    async def reload_tls(self, tls: Any = None) -> str | None:
        """Rotate certificates: read the TLS files again (or use ``tls``, a
        new ``trouper.TLSConfig``) for new tls://, quic:// and wss://
        connections; live links are kept. Under ``TLSConfig.dev()`` a new
        ephemeral certificate is made. Returns the new certificate's SHA-256
        fingerprint (hex). A bad file raises ``ConfigurationError`` naming
        it, and the certificates in use stay."""
        if self.remote is None:
            raise ConfigurationError("open_node(cookie=..., tls=...) is needed to use TLS")
        return await self.remote.reload_tls(tls)

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
        if self.remote is None or not self.addresses:
            raise ConfigurationError("spawn_node needs a node that listens (open_node(listen=...))")
        return await self.remote.spawn_node(
            name=name, allow_spawn=allow_spawn, listen=listen, timeout=timeout
        )

    # ---------------------------------------------------------- services

    def proxy(
        self,
        cls: type[T],
        *,
        timeout: float | None = 5.0,
        retry: Retry | None = None,
        balance: str | ConsistentHash = "round-robin",
        breaker: Breaker | None = None,
        metadata: Mapping[str, str] | None = None,
        middleware: Iterable[Any] = (),
        members: Sequence[ActorRef] | None = None,
    ) -> T:
        """A proxy of the ``@trouper.service`` class ``cls``, typed as ``cls``:
        its rpc methods call members of the service's group (see
        docs/services.md). Building one does no I/O and holds no connection."""
        from ..services import ServiceProxy

        proxy: Any = ServiceProxy(
            self,
            cls,
            timeout=timeout,
            retry=retry,
            balance=balance,
            breaker=breaker,
            metadata=metadata,
            middleware=middleware,
            members=members,
        )
        return proxy  # type: ignore[no-any-return]

    # ------------------------------------------------------------ events

    def publish(self, topic: Hashable, msg: Any) -> int:
        """Offer ``msg`` to the subscribers of ``topic`` on every node (a
        string topic; any other topic stays on this node); never waits.
        Returns how many subscribers it reached: the local ones that took it
        plus the counts the other nodes announced (see docs/services.md)."""
        return self.kernel.events.publish(topic, msg)

    def subscribe(
        self, topic: Hashable, buffer: int = 1000, policy: Policy = "drop-newest"
    ) -> AbstractAsyncContextManager[Subscription]:
        """``async with node.subscribe(topic) as events: async for msg in events: ...``

        At most ``buffer`` events wait for the subscriber; ``policy`` says
        what one more does: ``"drop-newest"``, ``"drop-oldest"`` or
        ``"disconnect"`` (the iteration then ends with ``SubscriberOverflow``).
        """
        return self.kernel.events.subscribe(topic, buffer, policy)

    def subscribers(self, topic: Hashable) -> int:
        """How many subscribers a publish on ``topic`` would reach now."""
        return self.kernel.events.subscribers(topic)

    def event_statistics(self) -> EventStatistics:
        """This node's event counts: published, delivered, dropped, sent..."""
        return self.kernel.events.statistics()

    def stats(self) -> NodeStats:
        kernel = self.kernel
        return NodeStats(
            node_id=self.id,
            actors=kernel.live,
            tasks=kernel.tasks - len(kernel.lingering),
            names=len(kernel.names),
            restarts=kernel.restarts,
            dead_letters=kernel.dead_letters.count,
            timers=len(kernel.timers),
            lingering=len(kernel.lingering),
        )
