"""The rpc and web gateway metrics, read from their plain counts at scrape time.

RPC durations use OpenTelemetry's RPC conventions as Prometheus names them
(``rpc.server.call.duration`` -> ``rpc_server_call_duration_seconds``, with
``rpc_service`` and ``rpc_method`` labels).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..services._rpc_metrics import RpcMetrics

if TYPE_CHECKING:
    from ..runtime import Node
    from ..runtime._counters import Histogram


def _durations(name: str, doc: str, side: dict[tuple[str, str], Histogram]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=["rpc_service", "rpc_method"])
    for (service, method), histogram in sorted(side.items()):
        family.add_metric([service, method], histogram.cumulative(), histogram.sum)
    return family


def rpc_families(node: Node) -> Iterator[Metric]:
    state = node.services
    metrics = getattr(state, "metrics", None)
    if not isinstance(metrics, RpcMetrics):
        metrics = RpcMetrics()  # no call yet: the families, empty
    yield _durations(
        "rpc_server_call_duration_seconds",
        "Duration of rpc calls served here (OpenTelemetry rpc.server.call.duration).",
        metrics.server,
    )
    yield _durations(
        "rpc_client_call_duration_seconds",
        "Duration of rpc calls made from here, retries included "
        "(OpenTelemetry rpc.client.call.duration).",
        metrics.client,
    )
    retries = CounterMetricFamily(
        "trouper_rpc_retries", "Rpc call attempts retried by proxies.", labels=["rpc_service"]
    )
    for service, n in sorted(metrics.retries.items()):
        retries.add_metric([service], n)
    yield retries
    limited = CounterMetricFamily(
        "trouper_rpc_rate_limited",
        "Rpc calls refused here by a RateLimit middleware.",
        labels=["rpc_service"],
    )
    for service, n in sorted(metrics.rate_limited.items()):
        limited.add_metric([service], n)
    yield limited
    changes = CounterMetricFamily(
        "trouper_rpc_breaker_changes",
        "Circuit breaker state changes, by the state entered.",
        labels=["rpc_service", "state"],
    )
    for (service, new), n in sorted(metrics.breaker_changes.items()):
        changes.add_metric([service, new], n)
    yield changes


def web_families(node: Node) -> Iterator[Metric]:
    if "trouper.web._gateway" not in sys.modules:
        return  # no gateway ever started in this process (and hypercorn stays unloaded)
    from ..web._connection import GatewayState
    from ..web._gateway import SEGMENT

    cell = node.kernel.cell_at(f"/system/{SEGMENT}")
    state = None if cell is None else getattr(cell.instance, "state", None)
    if not isinstance(state, GatewayState):
        return  # no gateway on this node (or it is restarting)
    metrics = state.metrics
    yield GaugeMetricFamily(
        "trouper_web_connections_open", "WebSocket sessions open.", value=metrics.connections
    )
    yield CounterMetricFamily(
        "trouper_web_connections_accepted",
        "WebSocket sessions accepted.",
        value=metrics.connections_total,
    )
    frames = CounterMetricFamily(
        "trouper_web_frames", "WebSocket messages, by direction.", labels=["direction"]
    )
    frames.add_metric(["received"], metrics.frames_received)
    frames.add_metric(["sent"], metrics.frames_sent)
    yield frames
    yield CounterMetricFamily(
        "trouper_web_slow_consumer_disconnects",
        "Sessions closed because their client did not read fast enough.",
        value=metrics.slow_consumers,
    )
    requests = HistogramMetricFamily(
        "trouper_web_request_duration_seconds",
        "Duration of HTTP requests to the gateway, by route.",
        labels=["route"],
    )
    for route, histogram in sorted(metrics.requests.items()):
        requests.add_metric([route], histogram.cumulative(), histogram.sum)
    yield requests
