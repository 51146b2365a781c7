"""A token bucket, for the per-connection rate limit. Pure: time is passed in."""

from __future__ import annotations

import math

from trouper._errors import ConfigurationError

__all__ = ["TokenBucket"]

# Refills are sums of float products, so "exactly enough" tokens can come out
# as 0.9999999999999 of one; a request short by less than this still passes.
_EPSILON = 1e-9


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full.

    The bucket is refilled lazily from the ``now`` of each call, so it costs
    nothing while idle. A ``now`` earlier than a previous one (a clock that
    went backwards) refills nothing rather than draining the bucket.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        if rate < 0 or math.isnan(rate):
            raise ConfigurationError(f"rate cannot be negative, got {rate}")
        if burst <= 0 or math.isinf(burst) or math.isnan(burst):
            raise ConfigurationError(f"burst must be positive and finite, got {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last: float | None = None

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate} burst={self.burst} tokens={self._tokens:.3f}>"

    def tokens(self, now: float) -> float:
        """Tokens available at ``now``."""
        self._refill(now)
        return self._tokens

    def try_take(self, now: float, n: float = 1) -> bool:
        """Take ``n`` tokens if they are all there; never takes part of them."""
        if n < 0:
            raise ValueError(f"cannot take a negative number of tokens: {n}")
        self._refill(now)
        if n > self._tokens + _EPSILON:
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def delay_until_available(self, now: float, n: float = 1) -> float:
        """Seconds from ``now`` until ``n`` tokens are there (0.0 if they are
        now); ``math.inf`` if that can never happen (``n > burst``, or a zero
        rate). Takes nothing."""
        if n < 0:
            raise ValueError(f"cannot take a negative number of tokens: {n}")
        self._refill(now)
        missing = n - self._tokens
        if missing <= _EPSILON:
            return 0.0
        if n > self.burst or self.rate == 0:
            return math.inf
        return missing / self.rate

    def _refill(self, now: float) -> None:
        last = self._last
        if last is not None and now > last:
            self._tokens = min(self.burst, self._tokens + (now - last) * self.rate)
        if last is None or now > last:
            self._last = now
