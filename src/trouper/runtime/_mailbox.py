"""What waits at a full mailbox, in one FIFO queue per cell.

A cell's mailbox is a bounded deque; behind it, when it is full, wait the
items that could not enter yet, in arrival order, so that no sender overtakes
another. Two kinds wait there:

* ``SpaceWaiter``: a local task blocked in ``tell``/``ask`` (backpressure).
  The task sleeps; the cell hands its item in and wakes it.
* ``ParkedItem``: an item taken off the network. The link's reader must never
  wait for one actor's mailbox (heartbeats and replies would queue behind
  it), so it parks the item and moves on; ``on_admit`` lets the remote layer
  return the sender's credit once the item is in (see ``trouper.remote``).

Both are admitted, or rejected if the actor dies first, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

__all__ = ["ParkedItem", "SpaceWaiter", "Waiter"]


class SpaceWaiter:
    __slots__ = ("item", "task")

    def __init__(self, task: trio.lowlevel.Task, item: Any) -> None:
        self.task = task
        self.item = item

    def admitted(self) -> None:
        trio.lowlevel.reschedule(self.task)

    def rejected(self) -> None:
        trio.lowlevel.reschedule(self.task)


class ParkedItem:
    __slots__ = ("item", "on_admit")

    def __init__(self, item: Any, on_admit: Callable[[], None] | None) -> None:
        self.item = item
        self.on_admit = on_admit

    def admitted(self) -> None:
        if self.on_admit is not None:
            self.on_admit()

    def rejected(self) -> None:
        # Credit is owed for an item whatever became of it.
        if self.on_admit is not None:
            self.on_admit()


Waiter = SpaceWaiter | ParkedItem
