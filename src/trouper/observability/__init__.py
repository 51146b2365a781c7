"""Observability: Prometheus metrics (and, from other modules, traces, logs
and the admin endpoint)."""

from ._metrics import metrics_registry as metrics_registry
from ._metrics import metrics_text as metrics_text
