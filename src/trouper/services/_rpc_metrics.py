"""Plain counts of rpc calls, read by ``trouper.observability`` at scrape time.

Durations follow OpenTelemetry's RPC conventions (``rpc.server.call.duration``
and ``rpc.client.call.duration``, in seconds, by service and method). One
histogram per (service, method): methods come from the ``@rpc`` tables of the
classes, and the server records only methods it has, so the label values are
bounded by the program's code; ``MAX_SERIES`` caps them anyway.
"""

from __future__ import annotations

from typing import Any, Final

from ..runtime._counters import Histogram

#: Above this many (service, method) pairs per side, calls share ("other", "other").
MAX_SERIES: Final = 1000


class RpcMetrics:
    __slots__ = ("breaker_changes", "client", "rate_limited", "retries", "server")

    def __init__(self) -> None:
        self.client: dict[tuple[str, str], Histogram] = {}
        self.server: dict[tuple[str, str], Histogram] = {}
        self.retries: dict[str, int] = {}  # by service
        self.rate_limited: dict[str, int] = {}  # by service, on the server
        self.breaker_changes: dict[tuple[str, str], int] = {}  # (service, new state)

    def observe(self, side: dict[tuple[str, str], Histogram], key: Any, seconds: float) -> None:
        histogram = side.get(key)
        if histogram is None:
            if len(side) >= MAX_SERIES:
                key = ("other", "other")
            histogram = side.get(key)
            if histogram is None:
                histogram = side[key] = Histogram()
        histogram.observe(seconds)

    def retried(self, service: str) -> None:
        self.retries[service] = self.retries.get(service, 0) + 1

    def limited(self, service: str) -> None:
        self.rate_limited[service] = self.rate_limited.get(service, 0) + 1

    def breaker_changed(self, service: str, new: str) -> None:
        key = (service, new)
        self.breaker_changes[key] = self.breaker_changes.get(key, 0) + 1
