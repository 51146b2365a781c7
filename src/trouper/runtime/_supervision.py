"""Carrying out supervision decisions: the runtime's half of supervision.

A failing cell suspends itself and sends ``ChildExited`` to its parent's
system queue; the parent's own task asks ``trouper.supervisors`` what to do
(``decide``: a pure table) and does it here: stop the child, restart the
children the strategy names (after their backoff delay), or fail itself
(escalation, or the restart intensity exceeded). Nothing here runs on the
failing task's stack.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from .._errors import SupervisionError
from ..supervisors._decision import Action, Exit, decide, plan_restart
from . import _lifecycle as life
from ._states import DEAD, RUNNING, SUSPENDED
from ._sysmsg import Done, RestartChildren, Start, Stop, Teardown

if TYPE_CHECKING:
    from ..supervisors._strategy import Strategy
    from ._cell import Cell

log = logging.getLogger("trouper")


def strategy_of(cell: Cell) -> Strategy:
    actor = cell._actor
    if actor is None or actor.supervision is None:
        return cell.node.kernel.supervision
    return actor.supervision


async def on_child_exited(parent: Cell, child: Cell, gen: int, exc: BaseException | None) -> None:
    if child._gen != gen or child._state != SUSPENDED or child.parent is not parent:
        return  # stale: the child was restarted or stopped since it reported
    if parent._state != RUNNING:
        return  # the parent is stopping or failed: its own stop takes the child
    strategy = strategy_of(parent)

    def within_intensity() -> bool:
        if parent._intensity is None:
            parent._intensity = strategy.intensity()
        return parent._intensity.record(trio.current_time())

    try:
        action = decide(
            child._restart,
            Exit.NORMAL if exc is None else Exit.CRASH,
            lambda: strategy.decider(exc) if exc is not None else "restart",
            within_intensity,
        )
    except Exception as exc_of_decider:  # a decider that raised, or answered nonsense
        life.crash(parent, exc_of_decider)
        return
    reason = "normal" if exc is None else f"error: {exc!r}"
    if action is Action.STOP:
        await stop_child(parent, child, reason)
    elif action is Action.ESCALATE:
        assert exc is not None
        life.crash(parent, exc)
    elif action is Action.GIVE_UP:
        error = SupervisionError(
            f"{parent.ref.path}: more than {strategy.max_restarts} restarts within "
            f"{strategy.within}s; last failure in {child.ref.path}: {exc!r}"
        )
        error.__cause__ = exc
        life.crash(parent, error)
    else:
        await _restart(parent, child, strategy, exc)


async def _restart(
    parent: Cell, child: Cell, strategy: Strategy, exc: BaseException | None
) -> None:
    kernel = parent.node.kernel
    kernel.restarts += 1
    siblings = [c for c in (parent._children or ()) if c._state != DEAD]
    affected = strategy.affected(siblings, child)
    to_stop, to_restart = plan_restart(affected, lambda c: c._restart)
    for cell in reversed(affected):
        if cell in to_stop:
            # OTP: a temporary sibling is terminated, never restarted.
            await stop_child(parent, cell, "shutdown")
        else:
            await teardown_child(parent, cell)
    gens = [c._gen for c in to_restart]
    assert parent._intensity is not None
    delay = strategy.backoff.delay(parent._intensity.recent - 1, kernel.rng)
    if delay > 0:
        kernel.timers.call_later(delay, parent, RestartChildren(to_restart, gens, exc))
    else:
        await restart_children(parent, to_restart, gens, exc)


async def restart_children(
    parent: Cell, children: list[Cell], gens: list[int], cause: BaseException | None
) -> None:
    for child, gen in zip(children, gens, strict=True):
        if parent._state != RUNNING:
            return
        if child._state != SUSPENDED or child._gen != gen or child.parent is not parent:
            continue
        if child._counts is not None:
            child._counts.restarts += 1
        done = Done()
        child.system(Start(cause, done, initial=False))
        await done.wait()


async def restart_child_now(parent: Cell, child: Cell) -> None:
    """Tear ``child`` down and start a fresh instance (the admin and
    ``Supervisor.restart_child`` path: a deliberate restart, not counted
    against the restart intensity)."""
    await teardown_child(parent, child)
    if child._state == SUSPENDED and child.parent is parent:
        done = Done()
        child.system(Start(None, done, initial=False))
        await done.wait()


async def stop_child(parent: Cell, child: Cell, reason: str) -> None:
    """Stop ``child`` and wait until it is gone; kill it past its shutdown
    time (at once for ``shutdown="brutal_kill"``)."""
    if child._state == DEAD:
        return
    shutdown = child._shutdown
    if shutdown == "brutal_kill":
        life.kill(child)
        await child.wait_dead()
        return
    if (
        not child._active
        and not child._children
        and child._bg is None
        and (child._actor is None or not child._info.has_on_stop)
    ):
        # Idle, childless and nothing to run: stopping is pure bookkeeping.
        life.finalize(child, reason)
        return
    done = child._terminated_event()
    child.system(Stop(reason))
    with trio.move_on_after(shutdown) as scope:
        await done.wait()
    # (the deadline may expire just as the child finishes: then no kill)
    if scope.cancelled_caught and not done.is_set():
        log.warning("actor %s did not stop within %ss: killed", child.ref.path, shutdown)
        life.kill(child)
        await done.wait()


async def teardown_child(parent: Cell, child: Cell) -> None:
    if child._state == DEAD:
        return
    shutdown = child._shutdown
    done = Done()
    child.system(Teardown(done))
    if shutdown == "brutal_kill":
        life.kill(child, mode="teardown")
    else:
        with trio.move_on_after(shutdown) as scope:
            await done.wait()
        # Not if the teardown finished as the deadline expired: a late kill
        # would clear the instance again (a new generation) after the
        # restart's generations were taken, and the restart would be dropped
        # as stale.
        if scope.cancelled_caught and not done.event.is_set():
            log.warning("actor %s did not stop within %ss: killed", child.ref.path, shutdown)
            life.kill(child, mode="teardown")
    await done.wait()
