"""Creating cells: a child under a parent, and the cells a node starts with.

``spawn`` validates what it is given exactly as ``trouper.child`` does (the
same functions check ``restart`` and ``shutdown``), so a misspelt restart
type or a negative shutdown fails here, not later at stop time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .._errors import ConfigurationError, NameTaken, SpawnRefused
from ..actors._actor import Actor
from ..supervisors._strategy import check_mailbox_size, check_restart, check_shutdown
from . import _lifecycle as life
from ._cell import Cell
from ._groups import group_of
from ._names import check_name
from ._states import RUNNING, STOPPING, Event
from ._sysmsg import Done, Start

if TYPE_CHECKING:
    from ._node import Node
    from ._ref import ActorRef


async def spawn_child(
    parent: Cell,
    cls: type[Actor],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None,
    *,
    name: str | None,
    mailbox_size: int | None,
    restart: object,
    shutdown: object,
    segment: str | None = None,
) -> ActorRef:
    """Start a child of ``parent`` and return its ref once its ``on_start``
    has finished; ``SpawnRefused`` if the constructor or ``on_start`` failed
    (the child is then gone)."""
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ConfigurationError(f"spawn needs an Actor subclass, got {cls!r}")
    restart_type = check_restart(restart)
    shutdown_time = check_shutdown(shutdown)
    kernel = parent.node.kernel
    size = check_mailbox_size(mailbox_size) or kernel.mailbox_size
    group = group_of(cls)  # a bad one is refused before anything starts
    if parent._state >= STOPPING:
        raise SpawnRefused(f"{parent.ref.path} is stopping; it cannot spawn {cls.__name__}")
    uid = kernel.next_uid()
    if name is None:
        segment = segment or f"${uid - kernel.uid_base:x}"
    else:
        segment = check_name(name)
        existing = kernel.names.get(name)
        if existing is not None:
            raise NameTaken(f"the name {name!r} is taken on node {kernel.node_id} by {existing}")
    path = f"{parent.ref.path}/{segment}"
    if path in kernel.paths and not kernel.paths[path].dead:
        raise ConfigurationError(f"{path} exists already")
    cell = Cell(
        parent.node,
        parent,
        cls,
        args,
        kwargs or None,
        name,
        path,
        uid,
        size,
        restart_type,
        shutdown_time,
    )
    try:
        cell._actor = cell.instantiate()
    except BaseException as exc:
        if not life.is_failure(exc):
            raise
        raise SpawnRefused(f"{cls.__name__}({_short(args)}) failed: {exc!r}") from exc
    if parent._children is None:
        parent._children = {}
    parent._children[cell] = None
    if name is not None:
        kernel.names.register(name, cell.ref)
    kernel.paths[path] = cell
    kernel.live += 1
    if cell._info.has_on_start:
        done = Done()
        cell.system(Start(None, done, initial=True))
        await done.wait()
        if done.error is not None:
            raise SpawnRefused(f"{cell.ref.path} failed to start: {done.error!r}") from done.error
    else:
        cell.advance(Event.STARTED)
    if group is not None and not cell.dead:
        # Joined once started: a member is ready for calls when it is seen.
        kernel.groups.join(group, cell.ref)
    if not cell._info.has_on_start:
        await trio.lowlevel.checkpoint_if_cancelled()
    return cell.ref


def fixed_cell(
    node: Node,
    parent: Cell | None,
    cls: type[Actor],
    args: tuple[Any, ...],
    path: str,
    shutdown: float,
) -> Cell:
    """A cell the node itself starts, synchronously, while it is built: the
    guardians and the system actors that exist from the first moment."""
    kernel = node.kernel
    cell = Cell(
        node,
        parent,
        cls,
        args,
        None,
        None,
        path,
        kernel.next_uid(),
        kernel.mailbox_size,
        "permanent",
        shutdown,
    )
    cell._actor = cell.instantiate()
    cell.advance(Event.STARTED)
    assert cell._state == RUNNING
    if parent is not None:
        if parent._children is None:
            parent._children = {}
        parent._children[cell] = None
    kernel.paths[path] = cell
    kernel.register_fixed(cell)
    kernel.live += 1
    return cell


def _short(args: tuple[Any, ...]) -> str:
    text = ", ".join(repr(a) for a in args)
    return text if len(text) <= 200 else text[:197] + "..."
