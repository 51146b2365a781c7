"""System messages: what cells tell each other about their lives.

They travel in a cell's unbounded system queue, beside its bounded mailbox,
and are handled by the cell's own task before any ordinary message, so
supervision runs in one place and in order (``_lifecycle.handle_system``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from ._cell import Cell


class Done:
    """Completion of an operation another task waits for."""

    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.error: BaseException | None = None

    async def wait(self) -> None:
        await self.event.wait()

    def finish(self, error: BaseException | None = None) -> None:
        if not self.event.is_set():
            if error is not None and self.error is None:
                self.error = error
            self.event.set()


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
    """Stop this child from the parent's own task (``ctx.stop(child)``,
    ``PoisonPill``, a remote stop), so its shutdown time applies as usual."""

    __slots__ = ("child", "done", "reason")

    def __init__(self, child: Cell, reason: str = "normal", done: Done | None = None) -> None:
        self.child = child
        self.reason = reason
        self.done = done


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


class Call:
    """Run ``fn(cell)`` in the cell's own task, as a system message: how a
    ``Supervisor`` changes its children (start, terminate, restart) in order
    with supervision decisions, never concurrently with them."""

    __slots__ = ("done", "fn")

    def __init__(self, fn: object, done: Done) -> None:
        self.fn = fn
        self.done = done
