"""``Kernel``: the machinery a node's cells share (``node.kernel``).

It owns the nursery every cell task runs in, the timer service, the names,
the path table, the dead letters and the counters behind ``node.stats()``.
Its methods without a leading underscore are the documented interface of the
runtime for the layers built on it (remoting, the web gateway): how they find
a local actor by path, start system actors, and learn of name changes.
"""

from __future__ import annotations

import itertools
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ConfigurationError, SupervisionError
from ..actors._actor import Actor
from ._counters import Counters
from ._events import DeadLetters, EventStream
from ._groups import Groups
from ._names import Names
from ._states import DEAD
from ._timers import TimerService

if TYPE_CHECKING:
    from ..supervisors._strategy import Strategy
    from ._cell import Cell
    from ._ref import ActorRef


class Kernel:
    def __init__(
        self,
        node_id: str,
        *,
        mailbox_size: int,
        throughput: int,
        linger: int,
        supervision: Strategy,
        seed: int | None,
        metrics: bool = True,
    ) -> None:
        self.node_id = node_id
        self.mailbox_size = mailbox_size
        self.throughput = throughput
        self.linger = linger
        self.supervision = supervision
        self.rng = random.Random(seed)
        # A uid tells incarnations of a path apart, also across restarts of a
        # node process: they start at a random base, so a ref to an actor of a
        # previous run never reaches its successor at the same path.
        self.uid_base = secrets.randbits(40) << 20
        self._uids = itertools.count(self.uid_base + 1)
        self.names = Names(node_id)
        self.groups = Groups()
        self.paths: dict[str, Cell] = {}
        self._extra_names: dict[Cell, list[str]] = {}
        #: The plain counters behind the metrics (``trouper.observability``).
        self.counters: Counters = Counters(metrics)
        self.events = EventStream()
        self.dead_letters = DeadLetters(self.events, self.counters)
        self.timers = TimerService()
        self.live = 0
        self.tasks = 0
        self.restarts = 0
        #: Cells whose task waits a moment for more work (``Cell._linger``),
        #: and whether a sweep to wake them is due.
        self.lingering: dict[Cell, None] = {}
        self._sweep_due = False
        self.failure: BaseException | None = None
        self.failed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._system: dict[str, Cell] = {}

    # ------------------------------------------------------------- tasks

    def start_cell_task(self, fn: Callable[[], Awaitable[Any]], name: str) -> None:
        """Run a cell's task (or its background host) in the node's nursery."""
        assert self._nursery is not None, "the node is not running"
        self._nursery.start_soon(fn, name=name)

    def add_lingering(self, cell: Cell, delay: float) -> None:
        self.lingering[cell] = None
        if not self._sweep_due:
            self._sweep_due = True
            self.timers.call_soon_after(delay, self._sweep)

    def _sweep(self) -> None:
        self._sweep_due = False
        for cell in list(self.lingering):
            cell._wake_up()

    def fatal(self, cell: Cell, exc: BaseException | None) -> None:
        """A guardian failed, or ^C reached an actor: the node stops (after
        stopping what it can, gracefully) and ``open_node`` raises."""
        if self.failure is None:
            self.failure = exc or SupervisionError(f"{cell.ref.path} exited")
            self.failed.set()

    # ------------------------------------------------------------- cells

    def next_uid(self) -> int:
        return next(self._uids)

    def cell_at(self, path: str, uid: int | None = None) -> Cell | None:
        """The live cell at ``path`` (with that ``uid``, when given), or None."""
        cell = self.paths.get(path)
        if cell is None or cell._state == DEAD or (uid is not None and cell.ref.uid != uid):
            return None
        return cell

    def forget(self, cell: Cell) -> None:
        """A cell is gone (``finalize``): drop its path, extra names and groups."""
        if self.paths.get(cell.ref.path) is cell:
            del self.paths[cell.ref.path]
        self.groups.leave_all(cell.ref)
        for name in self._extra_names.pop(cell, ()):
            self.names.unregister(name, cell.ref)

    def extra_name(self, cell: Cell, name: str) -> None:
        self._extra_names.setdefault(cell, []).append(name)

    async def spawn_system(
        self,
        group: str | None,
        cls: type[Actor],
        *args: Any,
        segment: str | None = None,
        shutdown: float = 5.0,
        restart: str = "transient",
        **kwargs: Any,
    ) -> ActorRef:
        """Start a system actor under ``/system`` or ``/system/<group>``.

        ``segment`` fixes its path segment (``None``: a generated one); a
        group is a plain parent actor created on first use.
        """
        from ._spawn import spawn_child

        parent = self._system["/system"] if group is None else self._group(group)
        return await spawn_child(
            parent,
            cls,
            args,
            kwargs,
            name=None,
            mailbox_size=None,
            restart=restart,
            shutdown=shutdown,
            segment=segment,
        )

    def _group(self, group: str) -> Cell:
        path = f"/system/{group}"
        cell = self._system.get(path)
        if cell is None or cell._state == DEAD:
            if "/" in group or not group:
                raise ConfigurationError(f"invalid system group {group!r}")
            from ._spawn import fixed_cell

            cell = self._system[path] = fixed_cell(
                self._system["/system"].node, self._system["/system"], _Plain, (), path, 5.0
            )
        return cell

    def register_fixed(self, cell: Cell) -> None:
        self._system[cell.ref.path] = cell


class _Plain(Actor):
    """A parent for a group of system actors (``/system/remote``...)."""
