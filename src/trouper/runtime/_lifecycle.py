"""Start, stop, crash, kill: everything that changes a cell's life.

Every state change goes through ``Cell.advance`` (the table in
``_states``). A cell's life only ever changes in its own task (or, for a
kill, when it has no task), so no two tasks race on it; what a supervisor
decides about its children is in ``_supervision``.

What counts as a failure: any ``BaseException`` from user code except
``trio.Cancelled`` (cancellation is never a failure) and ``KeyboardInterrupt``
(which stops the whole node, gracefully). A ``SystemExit`` or a
``GeneratorExit`` raised by a handler fails that actor only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ActorDead
from ._ref import WATCH_NOTICE
from ._states import DEAD, NEW, RUNNING, STOPPING, SUSPENDED, Event
from ._sysmsg import (
    Call,
    ChildExited,
    Crash,
    RestartChildren,
    SelfStop,
    Start,
    Stop,
    StopChild,
    Teardown,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._cell import Cell, Item

log = logging.getLogger("trouper")

_NOT_FAILURES = (trio.Cancelled, KeyboardInterrupt)


def is_failure(exc: BaseException) -> bool:
    """True for what should fail an actor; False for cancellation and ^C."""
    if isinstance(exc, _NOT_FAILURES):
        return False
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(_NOT_FAILURES) is None
    return True


def is_interrupt(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.subgroup(KeyboardInterrupt) is not None


async def handle_system(cell: Cell, msg: Any) -> None:
    from . import _supervision as sup

    kind = type(msg)
    if kind is ChildExited:
        await sup.on_child_exited(cell, msg.child, msg.gen, msg.exc)
    elif kind is Start:
        try:
            await start(cell, msg)
        finally:
            # Killed (cancelled) mid-start: release whoever waits (a spawn or
            # a restart), or the parent waits for ever in its own task.
            msg.done.finish(ActorDead(f"{cell.ref.path} was killed while starting"))
    elif kind is Stop:
        await stop(cell, msg.reason)
    elif kind is Teardown:
        try:
            await teardown(cell)
        finally:
            # Also when the teardown is killed past the shutdown time: the
            # parent waits on this in teardown_child (after_kill finishes the
            # bookkeeping before the parent can run again).
            msg.done.event.set()
    elif kind is StopChild:
        try:
            if msg.child.parent is cell:
                await sup.stop_child(cell, msg.child, msg.reason)
        finally:
            if msg.done is not None:
                msg.done.finish()
    elif kind is RestartChildren:
        await sup.restart_children(cell, msg.children, msg.gens, msg.cause)
    elif kind is SelfStop:
        if msg.gen == cell._gen and cell._state == RUNNING:
            cell.advance(Event.EXITED)
            report_exit(cell, None)
    elif kind is Crash:
        if msg.gen == cell._gen:
            crash_if_running(cell, msg.exc)
    elif kind is Call:
        try:
            await msg.fn(cell)
        finally:
            msg.done.finish()
    else:  # pragma: no cover - a bug in the runtime itself
        raise AssertionError(f"unknown system message {msg!r}")


# -------------------------------------------------------------- dead letters


def dead_letter(cell: Cell, msg: Any, sender: Any, reason: str) -> None:
    cell.node.kernel.dead_letters.record(msg, sender, cell.ref, reason)


def reject(cell: Cell, item: Item, reason: str) -> None:
    """An item that will never be handled: dead letters, and its asker fails."""
    msg, sender, reply = item
    if reply is WATCH_NOTICE:
        return  # a notice to a dead watcher concerns nobody
    dead_letter(cell, msg, sender, reason)
    if reply is not None:
        reply.fail(ActorDead(f"{cell.ref.path} is dead ({cell._reason or reason})"))


# ----------------------------------------------------------------- failure


def handler_failed(cell: Cell, msg: Any, sender: Any, exc: BaseException) -> None:
    """A handler raised: a dead letter, a count, and the actor crashes."""
    dead_letter(cell, msg, sender, f"failed: {exc!r}")
    if cell._counts is not None:
        cell._counts.failed += 1
    crash(cell, exc)


def crash(cell: Cell, exc: BaseException) -> None:
    """The actor failed: suspend it and tell its supervisor."""
    log.error("actor %s failed: %r", cell.ref.path, exc, exc_info=exc)
    cell.advance(Event.FAILED)
    report_exit(cell, exc)


def crash_if_running(cell: Cell, exc: BaseException) -> None:
    if cell._state == RUNNING:
        crash(cell, exc)


def poisoned(cell: Cell) -> None:
    """A ``PoisonPill`` reached the head of the mailbox: nothing after it is
    handled, and the parent stops the actor for good (Akka's semantics; a
    ``Supervisor`` keeps the child's spec, as after ``terminate_child``)."""
    if cell._state != RUNNING:
        return
    cell.advance(Event.POISONED)
    parent = cell.parent
    if parent is None:
        cell.system(Stop("poisoned"))
    else:
        parent.system(StopChild(cell, "normal"))


def report_exit(cell: Cell, exc: BaseException | None) -> None:
    parent = cell.parent
    if parent is None:
        cell.node.kernel.fatal(cell, exc)
    else:
        parent.system(ChildExited(cell, cell._gen, exc))


# ------------------------------------------------------------ start / stop


async def start(cell: Cell, msg: Start) -> None:
    """Build the instance if needed and run on_start (and on_restart)."""
    done = msg.done
    info = cell._info
    try:
        if cell._actor is None:
            cell._actor = cell.instantiate()
        actor = cell._actor
        # A scope per start, never per message: an admin kill cancels a hung
        # on_start, which then fails as if it had raised (runtime/_admin.py).
        with trio.CancelScope() as scope:
            cell._start_scope = scope
            try:
                if info.has_on_start:
                    await actor.on_start()
                if msg.cause is not None and info.has_on_restart:
                    await actor.on_restart(msg.cause)
            finally:
                cell._start_scope = None
        if scope.cancelled_caught and cell._killed is not None:
            killed, cell._killed = cell._killed, None
            raise killed
    except BaseException as exc:
        if not is_failure(exc):
            raise
        if msg.initial:
            done.error = exc
            await stop_children(cell, "parent failed to start")
            finalize(cell, f"error: {exc!r}")
        elif cell._state in (NEW, RUNNING, SUSPENDED):
            crash(cell, exc)
        done.event.set()
        return
    if cell._state in (NEW, SUSPENDED):
        cell.advance(Event.STARTED)
    done.event.set()


async def stop(cell: Cell, reason: str) -> None:
    """Stop in the cell's own task: children first, then on_stop, then gone."""
    if cell._state >= STOPPING:
        return
    cell.advance(Event.STOP)
    # Out of its groups at once, so no new call is routed to a stopping member.
    cell.node.kernel.groups.leave_all(cell.ref)
    await stop_children(cell, "parent stopping")
    await run_on_stop(cell)
    if cell._bg is not None:
        await cell._bg.close()
    finalize(cell, reason)


async def teardown(cell: Cell) -> None:
    """Before a restart: stop the children and the old instance, keep the cell."""
    if cell._state >= STOPPING:
        return
    cell.advance(Event.TEARDOWN)
    await stop_children(cell, "parent restarting")
    await run_on_stop(cell)
    if cell._bg is not None:
        await cell._bg.close()
    clear_instance(cell)


def clear_instance(cell: Cell) -> None:
    cell._bg = None
    cell._actor = None
    cell._gen += 1  # outstanding timers and reports of the old instance go stale
    cell._intensity = None


async def run_on_stop(cell: Cell) -> None:
    actor = cell._actor
    if actor is not None and cell._info.has_on_stop:
        try:
            await actor.on_stop()
        except BaseException as exc:
            if not is_failure(exc):
                raise
            log.error("actor %s: on_stop failed: %r", cell.ref.path, exc, exc_info=exc)


async def stop_children(cell: Cell, reason: str) -> None:
    """Stop every child, in reverse start order, one at a time (OTP order)."""
    from ._supervision import stop_child

    children = cell._children
    while children:
        child = next(reversed(children))
        await stop_child(cell, child, reason)
        children.pop(child, None)


# -------------------------------------------------------------------- kill


def kill(cell: Cell, mode: str = "kill") -> None:
    """Brutal kill (OTP ``brutal_kill``): cancel the cell's task and its
    descendants'. ``mode="teardown"`` keeps the cell for a restart."""
    for child in list(cell._children or ()):
        kill(child)
    cell._kill_mode = mode
    if cell._active:
        if cell._scope is not None:
            cell._scope.cancel()
        # else: the task has not started yet; it cancels itself when it does.
    else:
        after_kill(cell)


def after_kill(cell: Cell) -> None:
    """Runs once a killed cell's task has unwound (or at once if it had none)."""
    mode, cell._kill_mode = cell._kill_mode, ""
    if mode == "fail":
        from ._admin import after_interrupt

        after_interrupt(cell)
        return
    if mode == "teardown" and (
        cell._state >= STOPPING or any(type(m) is Stop for m in cell._sysq or ())
    ):
        # A stop is under way or queued (``node.stop`` raced the restart), or
        # the cell is already gone: it must not come back for a restart.
        mode = "kill"
    if mode == "teardown":
        if cell._current_reply is not None:
            # Killed in the middle of a handler: its asker would wait for ever.
            cell._current_reply.fail(ActorDead(f"{cell.ref.path} was killed (restarting)"))
            cell._current_reply = None
        if cell._actor is not None or cell._bg is not None:
            if cell._bg is not None:
                cell._bg.cancel()
            clear_instance(cell)
        # else the teardown completed before the cancel landed (at the next
        # checkpoint): clearing again would make the parent's restart stale.
        if cell._state != SUSPENDED:
            cell.advance(Event.TEARDOWN)
        if cell._sysq:
            # The cell lives on: what is queued (a Teardown, the parent's
            # Start) still runs, in a new task, rather than being dropped.
            cell._schedule()
    elif cell._state != DEAD:
        finalize(cell, "killed")


def flush_system(cell: Cell) -> None:
    """Release whoever waits on system messages that will not run now."""
    sysq = cell._sysq
    while sysq:
        msg = sysq.popleft()
        done = getattr(msg, "done", None)
        if done is not None:
            if type(msg) is Start:
                done.finish(ActorDead(f"{cell.ref.path} stopped before it started"))
            else:
                done.finish()


def finalize(cell: Cell, reason: str) -> None:
    """The cell is gone: bookkeeping only, no awaits, callable from any task."""
    if cell._state == DEAD:
        return
    for child in list(cell._children or ()):
        kill(child)  # stragglers only: a normal stop has stopped them already
    cell.advance(Event.GONE)
    cell._reason = reason
    node = cell.node
    kernel = node.kernel
    kernel.live -= 1
    if cell.name is not None:
        kernel.names.unregister(cell.name, cell.ref)
    parent = cell.parent
    if parent is not None and parent._children is not None:
        parent._children.pop(cell, None)
    if cell._bg is not None:
        cell._bg.cancel()
        cell._bg = None
    cell._actor = None
    cell._gen += 1
    if cell._current_reply is not None:
        cell._current_reply.fail(ActorDead(f"{cell.ref.path} stopped ({reason})"))
        cell._current_reply = None
    mailbox, cell._mailbox = cell._mailbox, None
    while mailbox:
        reject(cell, mailbox.popleft(), reason)
    waiters, cell._waiters = cell._waiters, None
    while waiters:
        waiter = waiters.popleft()
        reject(cell, waiter.item, reason)
        waiter.rejected()
    flush_system(cell)
    for watcher in list(cell._watchers or ()):
        watcher.watched_stopped(cell.ref, reason)
    cell._watchers = None
    for ref in cell._watching or ():
        target = ref._cell
        if target is None:
            if ref._via is not None:
                ref._via.unwatch(cell, ref)
        else:
            target.remove_watcher(cell)
    cell._watching = None
    kernel.forget(cell)
    if cell._terminated is not None:
        cell._terminated.set()


# ------------------------------------------------------- background tasks


def start_background(cell: Cell, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    from ._background import BackgroundTasks

    if cell._state == DEAD:
        raise ActorDead(f"{cell.ref.path} is dead")
    if cell._bg is None:
        cell._bg = BackgroundTasks(cell)
        cell.node.kernel.start_cell_task(cell._bg.run, f"{cell.ref.path} (tasks)")
    cell._bg.start_soon(fn, args)


def report_background_failure(cell: Cell, gen: int, exc: BaseException) -> None:
    cell.system(Crash(gen, exc))


def self_stop(cell: Cell) -> None:
    cell.system(SelfStop(cell._gen))
