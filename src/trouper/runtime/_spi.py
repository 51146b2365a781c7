"""The runtime's interfaces to the layers built on it.

The runtime is the local kernel and knows nothing of networks. Remoting plugs
in through ``RemoteLayer``: a node holds at most one, and a ref to an actor
of another node routes every operation to it. The other direction (what
``trouper.remote`` and ``trouper.web`` may use of the runtime) is the
documented surface of ``Kernel`` (``node.kernel``) and ``Cell`` plus the
functions below; nothing outside ``trouper.runtime`` touches its private
attributes (``tests/test_layout.py`` pins that).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..actors._actor import Actor
    from ._cell import Cell
    from ._channels import Channel
    from ._node import MemberInfo, Node, NodeHandle
    from ._ref import ActorRef
    from ._streams import StreamReader


class Watcher(Protocol):
    """Something in a cell's watcher set: another cell, or a stand-in for
    the watchers of another node."""

    def watched_stopped(self, ref: ActorRef, reason: str) -> None: ...


class RemoteLayer(Protocol):
    """What a node asks of its remote layer (``trouper.remote.Remoting``)."""

    #: The node's ``Tracing`` (``node.kernel.tracing``), or None: tracing off.
    tracing: Any

    # --- the node's life
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def abort(self) -> None:
        """Last resort at exit (after a failed shutdown): kill child node
        processes, drop connections; never waits."""

    # --- operations on a ref to another node's actor
    async def tell(self, ref: ActorRef, msg: Any) -> None: ...
    def tell_nowait(self, ref: ActorRef, msg: Any) -> None: ...
    async def ask(self, ref: ActorRef, msg: Any, timeout: float | None) -> Any: ...
    def open_stream(
        self, ref: ActorRef, msg: Any, window: int
    ) -> AbstractAsyncContextManager[StreamReader]: ...
    def open_channel(
        self, ref: ActorRef, msg: Any, window: int
    ) -> AbstractAsyncContextManager[Channel[Any, Any]]: ...
    def watch(self, watcher: Cell, ref: ActorRef) -> None: ...
    def unwatch(self, watcher: Cell, ref: ActorRef) -> None: ...
    async def stop(self, ref: ActorRef, *, kill: bool) -> None: ...

    # --- the cluster
    def members(self) -> list[MemberInfo]: ...
    async def wait_changed(self) -> None: ...
    async def connect(self, url: str) -> str: ...
    async def reload_tls(self, tls: Any) -> str | None: ...
    def lookup(self, name: str) -> ActorRef | None: ...
    def resolve(self, node_id: str, path: str, uid: int) -> ActorRef:
        """The ref for an address received from elsewhere (a live local
        actor's own ref, or one that routes through this layer)."""
        ...

    def names(self) -> dict[str, ActorRef]: ...
    def name_changed(self, name: str, ref: ActorRef, added: bool) -> None: ...
    def group_members(self, group: str) -> list[ActorRef]:
        """Members of ``group`` on other nodes: by node id, each in join order."""

    def group_names(self) -> set[str]: ...
    def group_changed(self, group: str, ref: ActorRef, joined: bool) -> None: ...
    async def spawn(
        self,
        node_id: str,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox_size: int | None,
        timeout: float,
    ) -> ActorRef: ...
    async def spawn_node(
        self, *, name: str | None, allow_spawn: Sequence[str], listen: str, timeout: float
    ) -> NodeHandle: ...


def cell_of(ref: ActorRef) -> Cell | None:
    """The cell behind a ref to an actor of this process (dead or alive), or
    None for an actor of another node."""
    return ref._cell


def node_of(ref: ActorRef) -> Node | None:
    """The node that made ``ref``: its own node for a local actor, the node
    whose remote layer routes it for a remote one (None for a bare ref)."""
    cell = ref._cell
    if cell is not None:
        return cell.node
    via: Any = ref._via
    return None if via is None else via.node
