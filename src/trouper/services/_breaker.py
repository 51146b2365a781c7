"""A circuit breaker per member, as one transition table (like h11's).

States and events::

    closed    --failure--> closed      (a failure below the threshold)
    closed    --trip-----> open        (the failure that reaches it)
    closed    --success--> closed      (resets the failure count)
    open      --cooled---> half-open   (``reset_after`` seconds went by)
    open      --success/failure--> open   (late answers of calls made before)
    half-open --probe----> half-open   (one call let through to test)
    half-open --success--> closed
    half-open --failure--> open        (and the wait starts again)

Pure: time is passed in as ``now``; the only side effect is ``on_change``,
called with (old, new) on every state change, so a node can count them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import attrs
import msgspec

from ..supervisors._strategy import _count, _finite

__all__ = ["TRANSITIONS", "Breaker", "BreakerChanged", "CircuitBreaker"]

State = Literal["closed", "open", "half-open"]
Event = Literal["success", "failure", "trip", "cooled", "probe"]

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half-open"

TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (CLOSED, "success"): CLOSED,
    (CLOSED, "failure"): CLOSED,
    (CLOSED, "trip"): OPEN,
    (OPEN, "cooled"): HALF_OPEN,
    (OPEN, "success"): OPEN,
    (OPEN, "failure"): OPEN,
    (HALF_OPEN, "probe"): HALF_OPEN,
    (HALF_OPEN, "success"): CLOSED,
    (HALF_OPEN, "failure"): OPEN,
}


@attrs.frozen
class Breaker:
    """Open after ``failures`` failures in a row; let one probe through after
    ``reset_after`` seconds; close when it succeeds."""

    failures: int = 5
    reset_after: float = 5.0

    def __attrs_post_init__(self) -> None:
        _count("Breaker.failures", self.failures, minimum=1)
        _finite("Breaker.reset_after", self.reset_after, inclusive=False)


class BreakerChanged(msgspec.Struct, frozen=True, gc=False):
    """A member's breaker changed state (for observability to count)."""

    service: str
    member: str
    old: str
    new: str


class CircuitBreaker:
    __slots__ = ("_failures", "_opened_at", "_probe_at", "config", "on_change", "state")

    def __init__(
        self, config: Breaker, on_change: Callable[[str, str], None] | None = None
    ) -> None:
        self.config = config
        self.on_change = on_change
        self.state: State = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        #: When the probe in flight was let through (None: no probe). A probe
        #: whose caller never reports (it was cancelled) expires after
        #: ``reset_after``, so the breaker cannot stay half-open for ever.
        self._probe_at: float | None = None

    def _fire(self, event: Event, now: float) -> None:
        old = self.state
        new = TRANSITIONS[(old, event)]
        if new == OPEN and old != OPEN:
            self._opened_at = now
        if new != HALF_OPEN:
            self._probe_at = None
        if new != CLOSED:
            self._failures = 0  # counted afresh once closed again
        self.state = new
        if new != old and self.on_change is not None:
            self.on_change(old, new)

    def _cool(self, now: float) -> None:
        if self.state == OPEN and now - self._opened_at >= self.config.reset_after:
            self._fire("cooled", now)

    def allow(self, now: float) -> bool:
        """May a call go to this member now? In half-open, True for one
        probe at a time."""
        self._cool(now)
        if self.state == CLOSED:
            return True
        if self.state == HALF_OPEN:
            probe = self._probe_at
            if probe is None or now - probe >= self.config.reset_after:
                self._fire("probe", now)
                self._probe_at = now
                return True
        return False

    def success(self, now: float) -> None:
        self._cool(now)
        self._failures = 0
        self._fire("success", now)

    def failure(self, now: float) -> None:
        self._cool(now)
        if self.state == CLOSED:
            self._failures += 1
            self._fire("trip" if self._failures >= self.config.failures else "failure", now)
        else:
            self._fire("failure", now)

    def time_left(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 unless open)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.config.reset_after - (now - self._opened_at))
