"""A token bucket per client, bounded in the number of clients (sans-IO).

Each client (its IP address) has a bucket of ``burst`` tokens refilled at
``rate`` tokens a second; a request takes one. ``take(key, now)`` answers 0
when the request passes, else the seconds until it would. Time is a
parameter, so the tests drive it.

At most ``max_clients`` buckets are kept, the least recently used first to
go. Forgetting an idle client loses nothing (its bucket was full again);
forgetting an active one, which only happens when more than
``max_clients`` clients are active at once, gives it a fresh burst: the
memory bound wins over exactness, and the log says it once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import attrs

from .._errors import ConfigurationError

__all__ = ["RateLimit", "TokenBuckets"]


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"RateLimit.{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class RateLimit:
    """``WebGateway(rate_limit=RateLimit(rate=50, burst=100))``: requests a
    second per client IP, the burst a client may spend at once, and how many
    clients are tracked (the memory bound)."""

    rate: float = attrs.field(default=50.0, validator=_positive)
    burst: float = attrs.field(default=100.0, validator=_positive)
    max_clients: int = attrs.field(default=10_000, validator=_positive)


class TokenBuckets:
    __slots__ = ("_buckets", "evicted", "limit")

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        # key -> (tokens, time of that count); the order is the LRU order.
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        self.evicted = 0

    def take(self, key: Hashable, now: float) -> float:
        """Take a token for ``key`` at ``now``: 0.0 if granted, else the wait."""
        limit = self.limit
        buckets = self._buckets
        entry = buckets.get(key)
        if entry is None:
            tokens = limit.burst
            if len(buckets) >= limit.max_clients:
                buckets.popitem(last=False)
                self.evicted += 1
        else:
            tokens = min(limit.burst, entry[0] + (now - entry[1]) * limit.rate)
            buckets.move_to_end(key)
        if tokens >= 1.0:
            buckets[key] = (tokens - 1.0, now)
            return 0.0
        buckets[key] = (tokens, now)
        return (1.0 - tokens) / limit.rate

    def __len__(self) -> int:
        return len(self._buckets)
