"""Retry policy and retry budget: pure, time passed in as ``now``.

``Retry`` says how many attempts a call may make and how long to wait
between them. The ``RetryBudget`` (Finagle's, also Linkerd's) caps retries
across all calls of a service: within the last ``window`` seconds, retries
may be at most ``ratio`` times the calls made, plus a small floor of
``min_per_second * window`` so that a quiet service can still retry at all.
When a whole group fails, every call fails once and only that fraction is
retried, instead of each call multiplying the load by ``attempts``.
"""

from __future__ import annotations

import random
from collections import deque

import attrs

from .._errors import ConfigurationError
from ..supervisors import Backoff
from ..supervisors._strategy import _count, _finite, _real

__all__ = ["DEFAULT_BACKOFF", "Retry", "RetryBudget"]

#: Used when ``Retry(backoff=None)``: a retry usually goes to another member,
#: so the first wait is short; repeated failures back off to at most 1s.
DEFAULT_BACKOFF = Backoff(initial=0.01, maximum=1.0, jitter=0.2, multiplier=2.0)

#: A window is kept as this many slices: memory is bounded whatever the call
#: rate, and the window slides in steps of ``window / SLICES``.
SLICES = 10


def _fraction(field: str, value: object) -> float:
    number = _real(value)
    if number is None or not 0 <= number <= 1:
        raise ConfigurationError(f"{field} must be a finite number between 0 and 1, not {value!r}")
    return float(number)


@attrs.frozen
class Retry:
    """``attempts`` tries in all (1 means no retry), waiting
    ``backoff.delay(attempt)`` after a failed one, within a budget of
    ``budget`` (a fraction of calls) retries per service."""

    attempts: int = 3
    backoff: Backoff | None = None
    budget: float = 0.2

    def __attrs_post_init__(self) -> None:
        _count("Retry.attempts", self.attempts, minimum=1)
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise ConfigurationError(
                f"Retry.backoff must be a trouper.Backoff or None, not {self.backoff!r}"
            )
        _fraction("Retry.budget", self.budget)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after attempt number ``attempt`` (0-based) failed,
        before the next one."""
        return (self.backoff or DEFAULT_BACKOFF).delay(attempt, rng)

    def make_budget(self) -> RetryBudget:
        return RetryBudget(self.budget)


class RetryBudget:
    """Retries allowed = ``ratio`` * calls in the last ``window`` seconds
    + ``min_per_second * window``, minus the retries already spent in it."""

    __slots__ = ("_slices", "min_per_second", "ratio", "window")

    def __init__(self, ratio: float, min_per_second: float = 10.0, window: float = 10.0) -> None:
        self.ratio = _fraction("RetryBudget.ratio", ratio)
        self.min_per_second = _finite("RetryBudget.min_per_second", min_per_second)
        self.window = _finite("RetryBudget.window", window, inclusive=False)
        # [slice number, calls, retries], oldest first; at most SLICES of them.
        self._slices: deque[list[int]] = deque()

    def _current(self, now: float) -> list[int]:
        index = int(now * SLICES // self.window)
        slices = self._slices
        while slices and slices[0][0] <= index - SLICES:
            slices.popleft()
        if not slices or slices[-1][0] < index:
            slices.append([index, 0, 0])
        # A clock that went back (it should not) counts in the newest slice.
        return slices[-1]

    def record_call(self, now: float) -> None:
        """A call was made (its first attempt, not its retries)."""
        self._current(now)[1] += 1

    def try_spend(self, now: float) -> bool:
        """True, and one retry spent, if the budget allows one more now."""
        current = self._current(now)
        if self.available(now) < 1:
            return False
        current[2] += 1
        return True

    def available(self, now: float) -> float:
        """Retries the budget would allow now (may be fractional)."""
        self._current(now)
        calls = sum(s[1] for s in self._slices)
        retries = sum(s[2] for s in self._slices)
        return self.ratio * calls + self.min_per_second * self.window - retries

    @property
    def calls(self) -> int:
        return sum(s[1] for s in self._slices)

    @property
    def retries(self) -> int:
        return sum(s[2] for s in self._slices)
