"""The one sizing policy of every trouper pool, sans-IO.

Worker pools, database pools and transport connection pools all size
themselves with this code, so they grow and shrink alike and it is tested
once, without a clock: the caller passes ``now`` (any monotonic seconds)
and the pool's numbers, and gets back the size it should have.

The rule (msgtrans'):

* **grow** when a checkout waited longer than ``grow_wait`` (5 ms), or when
  utilisation (active / size) is above ``grow_above`` (80 %). One growth
  step multiplies the size by a factor that falls as the pool nears its
  maximum: x2.0 below half of ``max``, x1.5 below three quarters, x1.2
  below nine tenths, then x1.1 (always at least one more member);
* **shrink** when utilisation stayed below ``shrink_below`` (20 %) for
  ``shrink_after`` seconds (5 minutes), to the size at which the busiest
  moment of that quiet period would have sat at the growth threshold, never
  under ``min``.

Growth is rate-limited by ``grow_interval``: members take time to open, and
a burst must not double the pool once per queued caller before the first
new member is even connected.
"""

from __future__ import annotations

import math

import attrs

from trouper._errors import ConfigurationError

__all__ = ["PoolPolicy", "PoolStatus", "Sizer"]

# (size as a fraction of max strictly below which the factor applies, factor)
_DEFAULT_STEPS: tuple[tuple[float, float], ...] = ((0.5, 2.0), (0.75, 1.5), (0.9, 1.2), (1.0, 1.1))


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{name} must be between 0 and 1, got {value!r}")


@attrs.frozen
class PoolPolicy:
    """When a pool grows and shrinks; every threshold is configurable.

    ``min``/``max`` bound the size; the rest is described in the module
    docstring. Invalid combinations raise ``ConfigurationError`` at
    construction, where the mistake is made.
    """

    min: int = 1
    max: int = 16
    grow_wait: float = 0.005
    grow_above: float = 0.8
    shrink_below: float = 0.2
    shrink_after: float = 300.0
    grow_interval: float = 0.05
    steps: tuple[tuple[float, float], ...] = _DEFAULT_STEPS

    def __attrs_post_init__(self) -> None:
        for name in ("min", "max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"pool {name} must be an int, got {value!r}")
        if self.min < 0 or self.max < 1 or self.min > self.max:
            raise ConfigurationError(
                f"pool sizes need 0 <= min <= max and max >= 1, got min={self.min} max={self.max}"
            )
        _check_fraction("grow_above", self.grow_above)
        _check_fraction("shrink_below", self.shrink_below)
        if self.shrink_below >= self.grow_above:
            raise ConfigurationError(
                f"shrink_below ({self.shrink_below}) must be under grow_above ({self.grow_above})"
            )
        for name in ("grow_wait", "shrink_after", "grow_interval"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ConfigurationError(
                    f"{name} must be >= 0 seconds, got {getattr(self, name)!r}"
                )
        if not self.steps or any(f <= 1.0 for _, f in self.steps):
            raise ConfigurationError(f"growth steps need factors above 1.0, got {self.steps!r}")

    def factor(self, size: int) -> float:
        """The growth factor for a pool of ``size`` members."""
        fraction = size / self.max
        for below, factor in self.steps:
            if fraction < below:
                return factor
        return self.steps[-1][1]

    def grown(self, size: int) -> int:
        """The size after one growth step from ``size`` (at least +1, at most ``max``)."""
        # round() first: 90 * 1.1 is 99.00000000000001 in floats, and x1.1 of
        # 90 means 99 members, not 100.
        grown = math.ceil(round(size * self.factor(size), 9))
        return min(self.max, max(size + 1, grown, self.min))

    def shrunk(self, size: int, peak_active: int) -> int:
        """The size after a quiet period whose busiest moment had ``peak_active``."""
        needed = math.ceil(peak_active / self.grow_above) if peak_active else 0
        return max(self.min, min(size, needed))


@attrs.frozen
class PoolStatus:
    """A snapshot of one pool (as ``trio`` objects' ``statistics()``).

    ``size`` counts live members plus those being opened; ``utilisation`` is
    ``active / size`` (0.0 for an empty pool); ``expansions`` and
    ``shrinks`` count policy decisions since the pool started.
    """

    name: str
    size: int
    active: int
    idle: int
    waiters: int
    utilisation: float
    expansions: int
    shrinks: int
    min: int
    max: int


class Sizer:
    """The policy's state: the quiet period under way and the last growth.

    Call ``record_wait`` when a checkout was served after waiting, and
    ``decide`` whenever the pool's numbers change or a timer fires; it
    returns the size the pool should have (the current one for no change)
    and counts the decision. Pure: no clock, no I/O.
    """

    def __init__(self, policy: PoolPolicy) -> None:
        self.policy = policy
        self.expansions = 0
        self.shrinks = 0
        self._waited = 0.0  # the longest wait recorded since the last decision
        self._last_growth: float | None = None
        self._quiet_since: float | None = None
        self._quiet_peak = 0

    def record_wait(self, waited: float) -> None:
        self._waited = max(self._waited, waited)

    def decide(
        self, now: float, *, size: int, active: int, waiters: int = 0, oldest_wait: float = 0.0
    ) -> int:
        """The target size; ``oldest_wait`` is how long the oldest waiter has waited."""
        policy = self.policy
        waited, self._waited = max(self._waited, oldest_wait), 0.0
        if size < policy.min:
            self._quiet_since = None
            return policy.min
        utilisation = active / size if size else (1.0 if waiters else 0.0)
        pressed = waited > policy.grow_wait or utilisation > policy.grow_above
        if waiters and size == 0:
            pressed = True
        if pressed:
            self._quiet_since = None
            if size >= policy.max:
                return size
            if self._last_growth is not None and now - self._last_growth < policy.grow_interval:
                return size
            self._last_growth = now
            self.expansions += 1
            return policy.grown(size)
        if utilisation >= policy.shrink_below or waiters:
            self._quiet_since = None
            return size
        if self._quiet_since is None:
            self._quiet_since, self._quiet_peak = now, active
            return size
        self._quiet_peak = max(self._quiet_peak, active)
        if now - self._quiet_since < policy.shrink_after:
            return size
        target = policy.shrunk(size, self._quiet_peak)
        self._quiet_since, self._quiet_peak = now, active  # a new quiet period starts
        if target < size:
            self.shrinks += 1
        return target

    def next_deadline(self) -> float | None:
        """When ``decide`` may next shrink the pool if nothing changes (None: never)."""
        if self._quiet_since is None:
            return None
        return self._quiet_since + self.policy.shrink_after
