"""The pool's bookkeeping records: a lent or idle member, a waiting caller."""

from __future__ import annotations

import traceback
from typing import Generic, TypeVar

import trio

T = TypeVar("T")

# The longest the pool's task sleeps with nothing to do; it also bounds how
# late a shrink, a health check or a leak is noticed.
IDLE_TICK = 1.0
# How long closing one member may take before the pool gives up on it.
CLOSE_TIMEOUT = 5.0


def never_broken(exc: BaseException) -> bool:
    return False


class Member(Generic[T]):
    __slots__ = ("reclaimed", "since", "stack", "value")

    def __init__(self, value: T, now: float) -> None:
        self.value = value
        self.since = now  # last checkout, or last return when idle
        self.stack: list[traceback.FrameSummary] | None = None
        self.reclaimed = False


class Waiter(Generic[T]):
    __slots__ = ("event", "member", "since")

    def __init__(self, since: float) -> None:
        self.since = since
        self.event = trio.Event()
        self.member: Member[T] | None = None
