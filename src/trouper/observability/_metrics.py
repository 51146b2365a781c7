"""``metrics_text`` and ``metrics_registry``: a node's Prometheus metrics.

Nothing is a live prometheus-client metric: the runtime and its layers keep
plain integers (``runtime/_counters.py``, the peers' byte counts...), and a
custom collector turns them into metric families when Prometheus scrapes. The
hot path so never pays for a labelled counter or a lock.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from ._actor_metrics import Monotonic, actor_families
from ._remote_metrics import remote_families
from ._service_metrics import rpc_families, web_families

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from ..runtime import Node

#: The classic text format: every Prometheus release reads it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_registries: weakref.WeakKeyDictionary[Node, CollectorRegistry] = weakref.WeakKeyDictionary()


class NodeCollector(Collector):
    """Reads one node's counters at each scrape."""

    def __init__(self, node: Node) -> None:
        self._node = weakref.ref(node)
        self._monotonic = Monotonic()

    def collect(self) -> Iterable[Metric]:
        node = self._node()
        if node is None:
            return
        yield from actor_families(node, self._monotonic)
        yield from remote_families(node)
        yield from rpc_families(node)
        yield from web_families(node)

    def describe(self) -> Iterable[Metric]:
        return ()  # names are fixed; no scrape at registration


def metrics_registry(node: Node) -> CollectorRegistry:
    """The node's registry (one per node, made on first use): register your
    own metrics on it to have them served beside trouper's."""
    registry = _registries.get(node)
    if registry is None:
        registry = _registries[node] = CollectorRegistry(auto_describe=False)
        registry.register(NodeCollector(node))
    return registry


def metrics_text(node: Node) -> tuple[bytes, str]:
    """The Prometheus text exposition of the node's metrics, and its content type."""
    return generate_latest(metrics_registry(node)), CONTENT_TYPE
