"""The life of a cell: five states and one transition table.

NEW        created; its ``on_start`` has not finished (messages wait)
RUNNING    handling messages
SUSPENDED  failed, exited or poisoned, and waiting for its supervisor's
           decision; or torn down and waiting to be rebuilt (messages wait)
STOPPING   stopping its children and running ``on_stop``
DEAD       gone: every message goes to dead letters, asks fail with ActorDead

States are small ints because the hot path compares them on every message;
every *change* goes through ``advance``, which looks the move up in
``TRANSITIONS``, so the whole life cycle is this one table (as h11 keeps its
connection states in ``_state.py``). A move that is not in the table is a bug
in the runtime, never something an actor or a peer can cause.
"""

from __future__ import annotations

import enum
from typing import Final

NEW: Final = 0
RUNNING: Final = 1
SUSPENDED: Final = 2
STOPPING: Final = 3
DEAD: Final = 4

NAMES: Final = ("new", "running", "suspended", "stopping", "dead")


class Event(enum.Enum):
    STARTED = "started"  # on_start (and on_restart) finished
    FAILED = "failed"  # a handler, a task or a restart's on_start raised
    EXITED = "exited"  # ctx.stop() of itself: a normal exit, for the supervisor
    POISONED = "poisoned"  # a PoisonPill reached the head of the mailbox
    TEARDOWN = "teardown"  # stopped to be restarted: the cell stays
    STOP = "stop"  # its stop begins (children, then on_stop)
    GONE = "gone"  # finalized: stopped, killed, or its start failed


_E = Event

#: (state, event) -> next state. Absent pairs are runtime bugs.
TRANSITIONS: Final[dict[tuple[int, Event], int]] = {
    (NEW, _E.STARTED): RUNNING,
    (NEW, _E.TEARDOWN): SUSPENDED,
    (NEW, _E.STOP): STOPPING,
    (NEW, _E.GONE): DEAD,
    (RUNNING, _E.FAILED): SUSPENDED,
    (RUNNING, _E.EXITED): SUSPENDED,
    (RUNNING, _E.POISONED): SUSPENDED,
    (RUNNING, _E.TEARDOWN): SUSPENDED,
    (RUNNING, _E.STOP): STOPPING,
    (RUNNING, _E.GONE): DEAD,
    (SUSPENDED, _E.STARTED): RUNNING,
    (SUSPENDED, _E.FAILED): SUSPENDED,
    (SUSPENDED, _E.TEARDOWN): SUSPENDED,
    (SUSPENDED, _E.STOP): STOPPING,
    (SUSPENDED, _E.GONE): DEAD,
    (STOPPING, _E.GONE): DEAD,
}


def advance(state: int, event: Event) -> int:
    """The state after ``event``; ``AssertionError`` for a move not in the table."""
    new = TRANSITIONS.get((state, event))
    if new is None:
        raise AssertionError(f"a cell cannot go from {NAMES[state]} on {event.value}")
    return new


def allows(state: int, event: Event) -> bool:
    return (state, event) in TRANSITIONS
