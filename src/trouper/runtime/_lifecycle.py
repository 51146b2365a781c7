"""Start, stop, crash, restart: everything that changes a cell's life.

Supervision runs in one place and in order: a failing cell suspends itself and
sends ``ChildExited`` to its parent's system queue; the parent's own task
decides (restart with backoff, stop, or escalate by failing itself). Nothing
here runs on the failing task's stack, and a cell's life only ever changes in
its own task (or, for a kill, when it has no task), so no two tasks race on it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ActorDead, SupervisionError
from ..supervisors._strategy import Strategy
from ._ref import STREAM_END as STREAM_END
from ._ref import WATCH_NOTICE
from ._states import DEAD, NEW, RUNNING, STOPPING, SUSPENDED

if TYPE_CHECKING:
    from ._cell import Cell, Item

log = logging.getLogger("trouper")


# ------------------------------------------------------------ system messages


class Done:
    """Completion of an operation another task waits for."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.error: BaseException | None = None

    async def wait(self) -> None:
        await self.event.wait()


class Start:
    __slots__ = ("cause", "done", "initial")

    def __init__(self, cause: BaseException | None, done: Done, initial: bool) -> None:
        self.cause = cause
        self.done = done
        self.initial = initial


class Stop:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class StopChild:
    """``ctx.stop(child)``: stop it from the parent's own task."""

    __slots__ = ("child",)

    def __init__(self, child: Cell) -> None:
        self.child = child


class Teardown:
    __slots__ = ("done",)

    def __init__(self, done: Done) -> None:
        self.done = done


class SelfStop:
    __slots__ = ("gen",)

    def __init__(self, gen: int) -> None:
        self.gen = gen


class Crash:
    """A background task of the cell failed."""

    __slots__ = ("exc", "gen")

    def __init__(self, gen: int, exc: BaseException) -> None:
        self.gen = gen
        self.exc = exc


class ChildExited:
    """A child crashed (``exc``) or exited normally (``exc is None``)."""

    __slots__ = ("child", "exc", "gen")

    def __init__(self, child: Cell, gen: int, exc: BaseException | None) -> None:
        self.child = child
        self.gen = gen
        self.exc = exc


class RestartChildren:
    """Sent by a parent to itself when a backoff delay has passed."""

    __slots__ = ("cause", "children", "gens")

    def __init__(self, children: list[Cell], gens: list[int], cause: BaseException | None) -> None:
        self.children = children
        self.gens = gens
        self.cause = cause


async def handle_system(cell: Cell, msg: Any) -> None:
    kind = type(msg)
    if kind is ChildExited:
        await on_child_exited(cell, msg.child, msg.gen, msg.exc)
    elif kind is Start:
        try:
            await start(cell, msg)
        finally:
            # Killed (cancelled) mid-start: release whoever waits (a spawn or
            # a restart), or the parent waits for ever in its own task.
            if not msg.done.event.is_set():
                msg.done.error = ActorDead(f"{cell.ref.path} was killed while starting")
                msg.done.event.set()
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
        if msg.child.parent is cell:
            await stop_child(cell, msg.child, "normal")
    elif kind is RestartChildren:
        await restart_children(cell, msg.children, msg.gens, msg.cause)
    elif kind is SelfStop:
        if msg.gen == cell._gen and cell._state == RUNNING:
            cell._state = SUSPENDED
            report_exit(cell, None)
    elif kind is Crash:
        if msg.gen == cell._gen and cell._state == RUNNING:
            crash(cell, msg.exc)
    else:  # pragma: no cover - a bug in the runtime itself
        raise AssertionError(f"unknown system message {msg!r}")


# -------------------------------------------------------------- dead letters


def dead_letter(cell: Cell, msg: Any, sender: Any, reason: str) -> None:
    cell.node._dead_letters.record(msg, sender, cell.ref, reason)


def reject(cell: Cell, item: Item, reason: str) -> None:
    """An item that will never be handled: dead letters, and its asker fails."""
    msg, sender, reply = item
    if reply is WATCH_NOTICE:
        return  # a notice to a dead watcher concerns nobody
    dead_letter(cell, msg, sender, reason)
    if reply is not None:
        reply.fail(ActorDead(f"{cell.ref.path} is dead ({cell._reason or reason})"))


# ----------------------------------------------------------------- failure


def crash(cell: Cell, exc: BaseException) -> None:
    """The actor failed: suspend it and tell its supervisor."""
    log.error("actor %s failed: %r", cell.ref.path, exc, exc_info=exc)
    cell._state = SUSPENDED
    report_exit(cell, exc)


def report_exit(cell: Cell, exc: BaseException | None) -> None:
    parent = cell.parent
    if parent is None:
        cell.node._fatal(cell, exc)
    else:
        parent._system(ChildExited(cell, cell._gen, exc))


def strategy_of(cell: Cell) -> Strategy:
    actor = cell._actor
    if actor is None or actor.supervision is None:
        return cell.node._supervision
    return actor.supervision


async def on_child_exited(parent: Cell, child: Cell, gen: int, exc: BaseException | None) -> None:
    if child._gen != gen or child._state != SUSPENDED or child.parent is not parent:
        return  # stale: the child was restarted or stopped since it reported
    if parent._state != RUNNING:
        return  # the parent is stopping or failed: its own stop takes the child
    reason = "normal" if exc is None else f"error: {exc!r}"
    kind = child._restart
    if kind == "temporary" or (kind == "transient" and exc is None):
        await stop_child(parent, child, reason)
        return
    strategy = strategy_of(parent)
    directive = "restart" if exc is None else strategy.decider(exc)
    if directive == "stop":
        await stop_child(parent, child, reason)
        return
    if directive == "escalate":
        assert exc is not None
        crash(parent, exc)
        return
    if parent._intensity is None:
        parent._intensity = strategy.intensity()
    intensity = parent._intensity
    if not intensity.record(trio.current_time()):
        error = SupervisionError(
            f"{parent.ref.path}: more than {strategy.max_restarts} restarts within "
            f"{strategy.within}s; last failure in {child.ref.path}: {exc!r}"
        )
        error.__cause__ = exc
        crash(parent, error)
        return
    node = parent.node
    node._restarts += 1
    siblings = [c for c in (parent._children or ()) if c._state != DEAD]
    affected = strategy.affected(siblings, child)
    for cell in reversed(affected):
        if cell._restart == "temporary":
            # OTP: a temporary sibling is terminated, never restarted.
            await stop_child(parent, cell, "shutdown")
        else:
            await teardown_child(parent, cell)
    affected = [c for c in affected if c._restart != "temporary"]
    gens = [c._gen for c in affected]
    delay = strategy.backoff.delay(intensity.recent - 1, node._rng)
    if delay > 0:
        node._timers.call_later(delay, parent, RestartChildren(affected, gens, exc))
    else:
        await restart_children(parent, affected, gens, exc)


async def restart_children(
    parent: Cell, children: list[Cell], gens: list[int], cause: BaseException | None
) -> None:
    for child, gen in zip(children, gens, strict=True):
        if parent._state != RUNNING:
            return
        if child._state != SUSPENDED or child._gen != gen or child.parent is not parent:
            continue
        done = Done()
        child._system(Start(cause, done, initial=False))
        await done.wait()


# ------------------------------------------------------------ start / stop


async def start(cell: Cell, msg: Start) -> None:
    """Build the instance if needed and run on_start (and on_restart)."""
    done = msg.done
    info = cell._info
    try:
        if cell._actor is None:
            cell._actor = cell._instantiate()
        actor = cell._actor
        if info.has_on_start:
            await actor.on_start()
        if msg.cause is not None and info.has_on_restart:
            await actor.on_restart(msg.cause)
    except Exception as exc:
        if msg.initial:
            done.error = exc
            await stop_children(cell, "parent failed to start")
            finalize(cell, f"error: {exc!r}")
        else:
            crash(cell, exc)
        done.event.set()
        return
    if cell._state in (NEW, SUSPENDED):
        cell._state = RUNNING
    done.event.set()


async def stop(cell: Cell, reason: str) -> None:
    """Stop in the cell's own task: children first, then on_stop, then gone."""
    if cell._state >= STOPPING:
        return
    cell._state = STOPPING
    await stop_children(cell, "parent stopping")
    await run_on_stop(cell)
    if cell._bg is not None:
        await cell._bg.close()
    finalize(cell, reason)


async def teardown(cell: Cell) -> None:
    """Before a restart: stop the children and the old instance, keep the cell."""
    if cell._state == DEAD:
        return
    cell._state = SUSPENDED
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
        except Exception as exc:
            log.error("actor %s: on_stop failed: %r", cell.ref.path, exc, exc_info=exc)


async def stop_children(cell: Cell, reason: str) -> None:
    """Stop every child, in reverse start order, one at a time (OTP order)."""
    children = cell._children
    while children:
        child = next(reversed(children))
        await stop_child(cell, child, reason)
        children.pop(child, None)


async def stop_child(parent: Cell, child: Cell, reason: str) -> None:
    """Stop ``child`` and wait until it is gone; kill it past its shutdown time."""
    if child._state == DEAD:
        return
    if (
        not child._active
        and not child._children
        and child._bg is None
        and (child._actor is None or not child._info.has_on_stop)
    ):
        # Idle, childless and nothing to run: stopping is pure bookkeeping.
        child._state = STOPPING
        finalize(child, reason)
        return
    done = child._terminated_event()
    child._system(Stop(reason))
    with trio.move_on_after(child._shutdown) as scope:
        await done.wait()
    # (the deadline may expire just as the child finishes: then no kill)
    if scope.cancelled_caught and not done.is_set():
        log.warning("actor %s did not stop within %ss: killed", child.ref.path, child._shutdown)
        kill(child)
        await done.wait()


async def teardown_child(parent: Cell, child: Cell) -> None:
    if child._state == DEAD:
        return
    done = Done()
    child._system(Teardown(done))
    with trio.move_on_after(child._shutdown) as scope:
        await done.wait()
    # Not if the teardown finished as the deadline expired: a late kill would
    # clear the instance again (a new generation) after the restart's
    # generations were taken, and the restart would be dropped as stale.
    if scope.cancelled_caught and not done.event.is_set():
        log.warning("actor %s did not stop within %ss: killed", child.ref.path, child._shutdown)
        kill(child, mode="teardown")
        await done.wait()


def kill(cell: Cell, mode: str = "kill") -> None:
    """Brutal kill (OTP ``brutal_kill``): cancel the cell's task and its
    descendants'. ``mode="teardown"`` keeps the cell for a restart."""
    for child in list(cell._children or ()):
        kill(child)
    if cell._active:
        cell._kill_mode = mode
        if cell._scope is not None:
            cell._scope.cancel()
        # else: the task has not started yet; it cancels itself when it does.
    else:
        cell._kill_mode = mode
        after_kill(cell)


def after_kill(cell: Cell) -> None:
    """Runs once a killed cell's task has unwound (or at once if it had none)."""
    mode, cell._kill_mode = cell._kill_mode, ""
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
        cell._state = SUSPENDED
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
            if type(msg) is Start and done.error is None:
                done.error = ActorDead(f"{cell.ref.path} stopped before it started")
            done.event.set()


def finalize(cell: Cell, reason: str) -> None:
    """The cell is gone: bookkeeping only, no awaits, callable from any task."""
    if cell._state == DEAD:
        return
    for child in list(cell._children or ()):
        kill(child)  # stragglers only: a normal stop has stopped them already
    cell._state = DEAD
    cell._reason = reason
    node = cell.node
    node._live -= 1
    if cell.name is not None:
        node._unregister(cell.name, cell)
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
        trio.lowlevel.reschedule(waiter.task)
    flush_system(cell)
    for watcher in list(cell._watchers or ()):
        watcher._watched_stopped(cell.ref, reason)
    cell._watchers = None
    for ref in cell._watching or ():
        target = ref._cell
        if target is None:
            if ref._via is not None:
                ref._via.unwatch(cell, ref)
        elif target._watchers is not None:
            target._watchers.discard(cell)
    cell._watching = None
    if node._paths.get(cell.ref.path) is cell:
        del node._paths[cell.ref.path]
    if cell._terminated is not None:
        cell._terminated.set()


# ------------------------------------------------------- background tasks


class BackgroundTasks:
    """An actor's own nursery, hosted by one task in the node's nursery.

    ``ctx.start_soon`` is synchronous, so tasks started before the host task
    has opened its nursery wait in ``pending``. A failure in any of them is a
    failure of the actor (a ``Crash`` system message), never of the node.
    """

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
        except Exception as exc:
            self.cell._system(Crash(self.gen, exc))

    def cancel(self) -> None:
        self.cancelled = True
        self.pending.clear()
        if self.scope is not None:
            self.scope.cancel()

    async def close(self) -> None:
        """Cancel every task and wait until they have all unwound."""
        self.cancel()
        await self.finished.wait()
