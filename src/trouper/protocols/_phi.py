"""The phi-accrual failure detector (Hayashibara et al.), as in Akka/Cassandra.

Instead of a yes/no timeout, phi measures how surprising the current silence
is given the recent heartbeat intervals, assumed normally distributed::

    phi(t) = -log10(P(an interval longer than t - last))

so phi = 1 means a 10% chance the peer is merely slow, phi = 8 a 1e-8 chance.
The normal CDF uses Akka's logistic approximation, 1 / (1 + exp(-z)) with
z = y * (1.5976 + 0.070566 * y**2) and y = (elapsed - mean) / std. Because
1 - CDF = exp(-z) / (1 + exp(-z)), phi = log10(1 + exp(z)), computed here as
a softplus so neither long silences nor early beats overflow or hit log(0).

Pure: every method takes the current time; nothing reads a clock.
"""

from __future__ import annotations

import math
from collections import deque

from trouper._errors import ConfigurationError

__all__ = ["PhiAccrualDetector"]

_A = 1.5976
_B = 0.070566
_LN10 = math.log(10.0)


def _softplus(z: float) -> float:
    """log(1 + exp(z)) without overflow."""
    if z > 0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


class PhiAccrualDetector:
    """Suspicion level of one peer, from the arrival times of its heartbeats.

    ``window`` intervals are kept. Before the first heartbeat phi is 0 (nothing
    is suspected until a peer has been heard from); the first one seeds the
    history with ``first_interval`` ± a quarter, as Akka does, so phi is
    meaningful immediately. ``acceptable_pause`` is added to the mean interval
    to tolerate known hiccups (GC, a busy loop) without raising suspicion.
    """

    __slots__ = (
        "_count_since_resum",
        "_intervals",
        "_last",
        "_sum",
        "_sumsq",
        "acceptable_pause",
        "first_interval",
        "min_std",
        "threshold",
        "window",
    )

    def __init__(
        self,
        threshold: float = 8.0,
        window: int = 100,
        min_std: float = 0.1,
        acceptable_pause: float = 0.0,
        first_interval: float = 1.0,
    ) -> None:
        if threshold <= 0:
            raise ConfigurationError(f"threshold must be positive, got {threshold}")
        if window < 1:
            raise ConfigurationError(f"window must be at least 1, got {window}")
        if min_std <= 0:
            raise ConfigurationError(f"min_std must be positive, got {min_std}")
        if acceptable_pause < 0:
            raise ConfigurationError(f"acceptable_pause cannot be negative: {acceptable_pause}")
        if first_interval <= 0:
            raise ConfigurationError(f"first_interval must be positive, got {first_interval}")
        self.threshold = threshold
        self.window = window
        self.min_std = min_std
        self.acceptable_pause = acceptable_pause
        self.first_interval = first_interval
        self._intervals: deque[float] = deque(maxlen=window)
        self._sum = 0.0
        self._sumsq = 0.0
        self._count_since_resum = 0
        self._last: float | None = None

    @property
    def last_heartbeat(self) -> float | None:
        return self._last

    @property
    def mean(self) -> float:
        """Mean of the recorded intervals (``first_interval`` before any)."""
        n = len(self._intervals)
        return self._sum / n if n else self.first_interval

    @property
    def std(self) -> float:
        """Standard deviation of the intervals, floored at ``min_std``."""
        n = len(self._intervals)
        if not n:
            return max(self.first_interval / 4, self.min_std)
        mean = self._sum / n
        variance = max(0.0, self._sumsq / n - mean * mean)
        return max(math.sqrt(variance), self.min_std)

    def heartbeat(self, now: float) -> None:
        """Record a heartbeat that arrived at ``now``."""
        last = self._last
        if last is None:
            std = self.first_interval / 4
            self._record(self.first_interval - std)
            self._record(self.first_interval + std)
        elif now < last:
            # A clock that went backwards says nothing about the interval.
            return
        elif self.is_available(now):
            # After a suspected failure the long gap would skew the history.
            self._record(now - last)
        self._last = now

    def phi(self, now: float) -> float:
        if self._last is None:
            return 0.0
        elapsed = now - self._last
        y = (elapsed - (self.mean + self.acceptable_pause)) / self.std
        return _softplus(y * (_A + _B * y * y)) / _LN10

    def is_available(self, now: float) -> bool:
        return self.phi(now) < self.threshold

    def unavailable_at(self, threshold: float | None = None) -> float | None:
        """When phi will reach ``threshold`` (default: ours) if no heartbeat
        arrives, so a caller can arm one timer instead of polling phi."""
        if self._last is None:
            return None
        target = self.threshold if threshold is None else threshold
        if target <= 0:
            raise ConfigurationError(f"threshold must be positive, got {target}")
        # Invert phi: z = log(10**target - 1), then solve the depressed cubic
        # B*y**3 + A*y - z = 0 (increasing in y, so one real root) by Cardano.
        t = target * _LN10
        z = t + math.log(-math.expm1(-t)) if t > 1 else math.log(math.expm1(t))
        p = _A / _B
        q = -z / _B
        root = math.sqrt(q * q / 4 + p * p * p / 27)
        y = math.cbrt(-q / 2 + root) + math.cbrt(-q / 2 - root)
        return self._last + self.mean + self.acceptable_pause + y * self.std

    def _record(self, interval: float) -> None:
        intervals = self._intervals
        if len(intervals) == intervals.maxlen:
            old = intervals[0]
            self._sum -= old
            self._sumsq -= old * old
        intervals.append(interval)
        self._sum += interval
        self._sumsq += interval * interval
        self._count_since_resum += 1
        if self._count_since_resum >= self.window:
            # Running sums drift with float rounding; recompute them exactly
            # once per window, which keeps recording O(1) amortised.
            self._count_since_resum = 0
            self._sum = math.fsum(intervals)
            self._sumsq = math.fsum(x * x for x in intervals)
