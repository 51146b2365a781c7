"""What the admin endpoint may do to an actor, beyond ``node.stop``/``kill``.

Both run through the runtime's own system messages, so they happen in order
with supervision and never concurrently with it:

- ``fail_actor``: the actor fails with the given error (as if a handler
  raised it) once its current message is handled; its supervisor then
  decides as for any failure (a restart, usually). This is the admin API's
  ``kill``: OTP's ``exit(Pid, kill)`` seen by a supervisor.
- ``restart_actor``: the parent tears the actor down (``on_stop``, children
  first) and starts a fresh instance at once; a deliberate restart, not
  counted against the restart intensity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfigurationError
from . import _lifecycle as life
from ._states import DEAD, NAMES
from ._sysmsg import Call, Done

if TYPE_CHECKING:
    from ._cell import Cell


def state_name(cell: Cell) -> str:
    """``"new"``, ``"running"``, ``"suspended"``, ``"stopping"`` or ``"dead"``."""
    return NAMES[cell.state]


def child_cells(cell: Cell) -> list[Cell]:
    """The live children of ``cell``, in start order."""
    children = cell._children
    return [] if children is None else [c for c in children if c._state != DEAD]


def fail_actor(cell: Cell, exc: BaseException) -> None:
    if cell.parent is None:
        raise ConfigurationError("guardians stop with the node")
    life.report_background_failure(cell, cell._gen, exc)


async def restart_actor(cell: Cell) -> None:
    from ._supervision import restart_child_now

    parent = cell.parent
    if parent is None:
        raise ConfigurationError("guardians stop with the node")

    async def restart(parent: Cell) -> None:
        if cell.parent is parent and cell._state != DEAD:
            await restart_child_now(parent, cell)

    done = Done()
    parent.system(Call(restart, done))
    await done.wait()
