"""An actor's own nursery (``ctx.start_soon``), hosted by one task.

``start_soon`` is synchronous, so tasks started before the host task has
opened its nursery wait in ``pending``. A failure in any of them is a failure
of the actor (a ``Crash`` system message), never of the node; cancellation
is never a failure, and ``KeyboardInterrupt`` stops the node gracefully.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from . import _lifecycle as life
from ._ref import current_cell

if TYPE_CHECKING:
    from ._cell import Cell


class BackgroundTasks:
    __slots__ = ("cancelled", "cell", "finished", "gen", "nursery", "pending", "scope")

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.gen = cell._gen
        self.nursery: trio.Nursery | None = None
        self.pending: list[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        self.scope: trio.CancelScope | None = None
        self.cancelled = False
        self.finished = trio.Event()

    async def run(self) -> None:
        current_cell.set(self.cell)
        try:
            with trio.CancelScope() as self.scope:
                if self.cancelled:
                    self.scope.cancel()
                async with trio.open_nursery() as nursery:
                    self.nursery = nursery
                    for fn, args in self.pending:
                        nursery.start_soon(self._guard, fn, args)
                    self.pending.clear()
                    await trio.sleep_forever()
        finally:
            self.nursery = None
            self.finished.set()

    def start_soon(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        if self.nursery is None:
            self.pending.append((fn, args))
        else:
            self.nursery.start_soon(self._guard, fn, args)

    async def _guard(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except BaseException as exc:
            if life.is_interrupt(exc):
                self.cell.node.kernel.fatal(self.cell, exc)
                return
            if not life.is_failure(exc):
                raise
            life.report_background_failure(self.cell, self.gen, exc)

    def cancel(self) -> None:
        self.cancelled = True
        self.pending.clear()
        if self.scope is not None:
            self.scope.cancel()

    async def close(self) -> None:
        """Cancel every task and wait until they have all unwound."""
        self.cancel()
        await self.finished.wait()
