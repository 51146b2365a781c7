"""What a supervisor does when a child exits, as one pure table.

The runtime carries decisions out (stopping, tearing down, restarting cells);
this module only *makes* them, from plain values, so every case is tested
without Trio and without a clock (``tests/test_supervision_decisions.py``)::

    restart type   how it exited   ->  step
    ─────────────  ──────────────      ───────────────────────────────────
    temporary      normal / crash      STOP      never restarted (OTP)
    transient      normal              STOP      a normal exit is the end
    transient      crash               DECIDE    ask the strategy's decider
    permanent      normal              RESTART   always comes back
    permanent      crash               DECIDE

    decider says   ->  step
    "restart"          RESTART
    "stop"             STOP
    "escalate"         ESCALATE  the supervisor fails with the child's error

    RESTART within the intensity window -> RESTART, else GIVE_UP (the
    supervisor fails with SupervisionError, chained to the child's error)

Which children a restart takes is the strategy's (``Strategy.affected``);
``plan_restart`` then sets aside the *temporary* siblings, which OTP stops
instead of restarting.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from ._strategy import Directive, RestartType

__all__ = ["TABLE", "Action", "Exit", "decide", "plan_restart"]

T = TypeVar("T")


class Exit(enum.Enum):
    NORMAL = "normal"
    CRASH = "crash"


class Action(enum.Enum):
    STOP = "stop"  # remove the child for good
    RESTART = "restart"  # restart the children the strategy names
    ESCALATE = "escalate"  # fail the supervisor with the child's error
    GIVE_UP = "give-up"  # intensity exceeded: fail with SupervisionError
    DECIDE = "decide"  # (intermediate) the decider chooses


#: (restart type, exit) -> the first step.
TABLE: Final[dict[tuple[RestartType, Exit], Action]] = {
    ("temporary", Exit.NORMAL): Action.STOP,
    ("temporary", Exit.CRASH): Action.STOP,
    ("transient", Exit.NORMAL): Action.STOP,
    ("transient", Exit.CRASH): Action.DECIDE,
    ("permanent", Exit.NORMAL): Action.RESTART,
    ("permanent", Exit.CRASH): Action.DECIDE,
}

_DIRECTIVES: Final[dict[Directive, Action]] = {
    "restart": Action.RESTART,
    "stop": Action.STOP,
    "escalate": Action.ESCALATE,
}


def decide(
    restart: RestartType,
    exit: Exit,
    directive: Callable[[], Directive],
    within_intensity: Callable[[], bool],
) -> Action:
    """The action for a child that exited.

    ``directive`` and ``within_intensity`` are called only when the table
    needs them: the decider only for a crash, and the intensity window only
    for a restart (so that a stop never counts as a restart).
    """
    action = TABLE[restart, exit]
    if action is Action.DECIDE:
        chosen = directive()
        try:
            action = _DIRECTIVES[chosen]
        except KeyError:
            raise ValueError(
                f"a decider must return 'restart', 'stop' or 'escalate', not {chosen!r}"
            ) from None
    if action is Action.RESTART and not within_intensity():
        return Action.GIVE_UP
    return action


def plan_restart(
    affected: Sequence[T], restart_of: Callable[[T], RestartType]
) -> tuple[list[T], list[T]]:
    """Split the children a restart takes into (to stop, to restart), both in
    start order: temporary siblings are stopped, never restarted (OTP)."""
    stop = [c for c in affected if restart_of(c) == "temporary"]
    restart = [c for c in affected if restart_of(c) != "temporary"]
    return stop, restart
