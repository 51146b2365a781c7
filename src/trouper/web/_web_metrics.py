"""Plain counts of the web gateway, read by ``trouper.observability``.

They live on the ``GatewayState``, which outlives restarts of the gateway
actor, so counters never go back. Routes are a fixed set (not raw paths:
every probe of a random URL would otherwise be a new series).
"""

from __future__ import annotations

from ..runtime._counters import Histogram

#: The ``route`` label of ``trouper_web_request_duration_seconds``.
ROUTES = ("/healthz", "/readyz", "routes", "websocket", "static", "other")


class WebMetrics:
    __slots__ = (
        "connections",
        "connections_total",
        "frames_received",
        "frames_sent",
        "requests",
        "slow_consumers",
    )

    def __init__(self) -> None:
        self.connections = 0  # WebSocket sessions open now
        self.connections_total = 0
        self.frames_received = 0
        self.frames_sent = 0
        self.slow_consumers = 0  # sessions closed as too slow to read
        self.requests: dict[str, Histogram] = {}

    def request(self, route: str, seconds: float) -> None:
        histogram = self.requests.get(route)
        if histogram is None:
            histogram = self.requests[route] = Histogram()
        histogram.observe(seconds)


def route_of(path: str, websocket_paths: tuple[str | None, ...], static: bool) -> str:
    if path in ("/healthz", "/readyz"):
        return path
    if path in websocket_paths:
        return "websocket"
    return "static" if static else "other"
