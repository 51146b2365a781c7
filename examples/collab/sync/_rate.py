"""Updates per second over a sliding window, pure (time passed in).

Counts go into one-second buckets; the rate is the events of the last
``window`` seconds divided by the time they cover (the window, or less
while the document is younger than it). Memory is ``window`` buckets,
whatever the rate.
"""

from __future__ import annotations

from collections import deque

#: Seconds the updates-per-second figure looks back.
RATE_WINDOW = 10


class RateWindow:
    def __init__(self, window: int = RATE_WINDOW, start: float = 0.0) -> None:
        self.window = window
        self.start = start
        self._buckets: deque[tuple[int, int]] = deque()  # (second, count), oldest first

    def add(self, now: float, count: int = 1) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + count)
        else:
            self._buckets.append((second, count))
        self._expire(second)

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self.window:
            self._buckets.popleft()

    def rate(self, now: float) -> float:
        self._expire(int(now))
        total = sum(count for _, count in self._buckets)
        span = min(float(self.window), max(now - self.start, 1.0))
        return total / span
