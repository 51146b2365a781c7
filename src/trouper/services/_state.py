"""The services state of one node: what its proxies share (breakers and
retry budgets) and what its servers keep (running calls to cancel, results of
non-idempotent calls to deduplicate), with the bounds of each.

Held in ``node.services`` (the node keeps it and never reads it); it refers
back to its node weakly.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

from .._errors import TrouperError
from ..actors import Actor, handler
from ..runtime import ActorRef
from ._messages import CancelCall
from ._rpc_metrics import RpcMetrics

if TYPE_CHECKING:
    from ..runtime import Node

#: Calls running on a node that a caller may cancel; past it, a call still
#: runs under its deadline but cannot be cancelled early.
MAX_RUNNING_CALLS = 10_000
#: Results of non-idempotent calls kept to answer a retry of the same
#: logical call (same caller and idempotency key): at most this many, each
#: for at most DEDUP_WINDOW seconds.
MAX_DEDUP_ENTRIES = 10_000
DEDUP_WINDOW = 60.0
#: Cancels that arrived before their call started (it waited in a mailbox).
MAX_EARLY_CANCELS = 1_000
#: Per-(service, member) breakers a node keeps; the least recently used go.
MAX_BREAKERS = 10_000


def services_name(node_id: str) -> str:
    """The cluster-wide name of a node's services actor (what cancels go to)."""
    return f"trouper.services@{node_id}"


class ServicesActor(Actor):
    """``/system/services``: takes the cancels of calls running on this node
    (a told ``CancelCall``), never waiting behind the busy member's mailbox."""

    @handler
    async def cancel(self, msg: CancelCall) -> None:
        services_of(self.ctx.node).cancel(msg.caller, msg.id)


class ServicesState:
    __slots__ = (
        "__weakref__",
        "_node",
        "actor_started",
        "breakers",
        "budgets",
        "clock",
        "dedup",
        "early_cancels",
        "metrics",
        "middleware",
        "running",
        "unsettled",
    )

    def __init__(self, node: Node) -> None:
        self._node = weakref.ref(node)
        #: The run's clock, read directly by servers: ``trio.current_time()``
        #: costs twice as much.
        self.clock: trio.abc.Clock | None = _run_clock()
        self.middleware: tuple[Any, ...] = ()
        self.running: dict[tuple[str, int], trio.CancelScope] = {}
        self.dedup: OrderedDict[tuple[str, int], tuple[float, Any]] = OrderedDict()
        self.early_cancels: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.breakers: OrderedDict[tuple[object, ActorRef], Any] = OrderedDict()
        self.budgets: dict[str, Any] = {}
        #: Breakers with a failure since their last success: only those need
        #: telling of a success while closed (the common case costs nothing).
        self.unsettled: set[Any] = set()
        self.actor_started = False
        #: Call durations, retries, breaker changes (``_rpc_metrics``).
        self.metrics = RpcMetrics()

    @property
    def node(self) -> Node:
        node = self._node()
        assert node is not None, "a node's services state outlived it"
        return node

    # ------------------------------------------------------------ server

    def resolve(self, node_id: str, path: str, uid: int) -> ActorRef:
        """The ref for an ``ActorRef`` argument's address, as this node
        would make it from a message."""
        node = self.node
        if node.remote is not None:
            return node.remote.resolve(node_id, path, uid)
        cell = node.kernel.cell_at(path, uid) if node_id == node.id else None
        return cell.ref if cell is not None else ActorRef(node_id, path, uid)

    async def ensure_actor(self) -> None:
        """Start this node's services actor and name it (once), so that
        callers on other nodes can send it their cancels."""
        if self.actor_started:
            return
        self.actor_started = True
        node = self.node
        try:
            ref = await node.kernel.spawn_system(None, ServicesActor, segment="services")
            node.registry.register(services_name(node.id), ref)
        except TrouperError:  # the node is stopping: calls still run under their deadlines
            return

    def start(self, caller: str, id: int, scope: trio.CancelScope) -> bool:
        """Record a running call; False if its caller cancelled it already."""
        key = (caller, id)
        if key in self.early_cancels:
            del self.early_cancels[key]
            return False
        if len(self.running) < MAX_RUNNING_CALLS:
            self.running[key] = scope
        return True

    def finish(self, caller: str, id: int) -> None:
        self.running.pop((caller, id), None)

    def cancel(self, caller: str, id: int) -> None:
        """Cancel call ``id`` of ``caller`` (only its own caller can name it:
        ids are random 63-bit numbers, known to that caller alone)."""
        scope = self.running.get((caller, id))
        if scope is not None:
            scope.cancel()
            return
        early = self.early_cancels
        early[(caller, id)] = None
        if len(early) > MAX_EARLY_CANCELS:
            early.popitem(last=False)

    def recall(self, caller: str, key: int, now: float) -> Any:
        """The result a non-idempotent call with this key had, or None."""
        entry = self.dedup.get((caller, key))
        if entry is None:
            return None
        if entry[0] < now:
            del self.dedup[(caller, key)]
            return None
        return entry[1]

    def remember(self, caller: str, key: int, now: float, result: Any) -> None:
        dedup = self.dedup
        dedup[(caller, key)] = (now + DEDUP_WINDOW, result)
        dedup.move_to_end((caller, key))
        while dedup and (len(dedup) > MAX_DEDUP_ENTRIES or next(iter(dedup.values()))[0] < now):
            dedup.popitem(last=False)

    # ------------------------------------------------------------ client

    def breaker(self, service: object, member: ActorRef, make: Callable[[], Any]) -> Any:
        key = (service, member)
        breakers = self.breakers
        found = breakers.get(key)
        if found is None:
            found = breakers[key] = make()
            if len(breakers) > MAX_BREAKERS:
                self.unsettled.discard(breakers.popitem(last=False)[1])
        else:
            breakers.move_to_end(key)
        return found

    def budget(self, service: str, make: Callable[[], Any]) -> Any:
        found = self.budgets.get(service)
        if found is None:
            found = self.budgets[service] = make()
        return found

    def cancel_remote(self, member: ActorRef, id: int) -> None:
        """The caller of call ``id`` was cancelled: tell the member's node."""
        node = self.node
        if member.node_id == node.id:
            self.cancel(node.id, id)
            return
        ref = node.registry.get(services_name(member.node_id))
        if ref is None:
            return  # its node has not started its services actor yet: the deadline bounds it
        try:
            ref.tell_nowait(CancelCall(node.id, id))
        except Exception:  # a full outbox or a peer gone: the deadline still bounds the work
            pass


def _run_clock() -> trio.abc.Clock | None:
    try:
        return trio.lowlevel.current_clock()
    except RuntimeError:  # made outside trio.run: calls read trio.current_time()
        return None


def services_of(node: Node) -> ServicesState:
    state: ServicesState | None = node.services
    if state is None:
        state = node.services = ServicesState(node)
    return state


def configure(node: Node, middleware: Sequence[Any]) -> None:
    """The node-wide middleware chain (``open_node(middleware=[...])``)."""
    services_of(node).middleware = tuple(middleware)
