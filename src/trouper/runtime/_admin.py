"""What the admin endpoint may do to an actor, beyond ``node.stop``/``kill``.

Both run through the runtime's own system messages, so they happen in order
with supervision and never concurrently with it:

- ``fail_actor``: the actor fails with the given error at once, as if its
  running handler (or ``on_start``) had raised it; its supervisor then
  decides as for any failure (a restart, usually). This is the admin API's
  ``kill``: OTP's ``exit(Pid, kill)`` seen by a supervisor, and it works on
  a hung actor: a handler is interrupted by cancelling the cell's own task
  scope (the one a brutal kill cancels), ``on_start`` by the scope each start
  has. No message pays for this: the only flag is on the system path.
- ``restart_actor``: the parent tears the actor down (``on_stop``, children
  first) and starts a fresh instance at once; a deliberate restart, not
  counted against the restart intensity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ActorKilled, ConfigurationError
from . import _lifecycle as life
from ._states import DEAD, NAMES, RUNNING, STOPPING
from ._sysmsg import Call, Crash, Done

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
    state = cell._state
    if state == DEAD or cell._kill_mode:
        return  # gone, or a kill is already unwinding it
    if state == STOPPING:
        # On its way out already (children, then on_stop): OTP's kill of a
        # terminating process ends it now, as its shutdown time would.
        life.kill(cell)
        return
    if cell._start_scope is not None:
        cell._killed = exc
        cell._start_scope.cancel()  # start() fails the start with ``exc``
        return
    # Ahead of any other system message: the next thing the cell does is fail.
    cell.system(Crash(cell._gen, exc))
    assert cell._sysq is not None
    cell._sysq.rotate(1)
    if state == RUNNING and cell._scope is not None and not cell._in_system:
        # Its task may be stuck in a handler: unwind it; after_interrupt
        # starts a new task, which takes the Crash first.
        cell._killed = exc
        cell._kill_mode = "fail"
        cell._scope.cancel()


def after_interrupt(cell: Cell) -> None:
    """The cell's task has unwound from a ``fail_actor`` cancel."""
    exc, cell._killed = cell._killed, None
    reply, cell._current_reply = cell._current_reply, None
    if reply is not None:
        # Its asker gets the failure, as when a handler raises.
        reply.fail(exc or ActorKilled(f"{cell.ref.path} was killed"))
    if cell._sysq or (cell._mailbox and cell._state == RUNNING):
        cell._schedule()


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
