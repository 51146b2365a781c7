"""The actor metrics, read from the runtime's plain counters at scrape time.

Labels are by actor class, never by actor path: a node may run a million
actors, and Prometheus keeps one series per label set. Classes past
``MAX_CLASSES`` share ``actor_class="other"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..runtime._counters import MAX_CLASSES, REASON_LABELS, Counters, class_label
from ..runtime._states import NAMES

if TYPE_CHECKING:
    from ..runtime import Node


class Monotonic:
    """Keeps a computed counter from going back between two scrapes.

    ``ok`` is ``handled - failed - unhandled``; a failure is counted the
    moment it happens and the batch's ``handled`` when the batch ends, so a
    scrape in between would see ``ok`` one lower than before.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[tuple[str, ...], float] = {}

    def __call__(self, key: tuple[str, ...], value: float) -> float:
        value = max(value, self.last.get(key, 0.0))
        self.last[key] = value
        return value


def _labeller(counters: Counters) -> dict[type, str]:
    """actor class -> label, with the same cap as the counters themselves."""
    return {cls: c.name for cls, c in counters.by_class.items()}


def actor_families(node: Node, monotonic: Monotonic) -> Iterator[Metric]:
    counters = node.kernel.counters
    messages = CounterMetricFamily(
        "trouper_messages",
        "Messages handled by actors, by actor class and outcome (ok, failed, unhandled).",
        labels=["actor_class", "outcome"],
    )
    durations = HistogramMetricFamily(
        "trouper_handler_duration_seconds",
        f"Handler run time, sampled: one batch in {_sample_every()} per class is timed.",
        labels=["actor_class"],
    )
    restarts = CounterMetricFamily(
        "trouper_restarts", "Restarts by supervisors, by actor class.", labels=["actor_class"]
    )
    for c in counters.classes():
        ok = monotonic((c.name, "ok"), c.handled - c.failed - c.unhandled)
        messages.add_metric([c.name, "ok"], ok)
        messages.add_metric([c.name, "failed"], c.failed)
        messages.add_metric([c.name, "unhandled"], c.unhandled)
        durations.add_metric([c.name], c.durations.cumulative(), c.durations.sum)
        restarts.add_metric([c.name], c.restarts)
    yield messages
    yield durations
    yield restarts

    labels = _labeller(counters)
    actors: dict[tuple[str, str], int] = {}
    depth_sum: dict[str, int] = {}
    depth_max: dict[str, int] = {}
    for cell in list(node.kernel.paths.values()):
        cls = cell.actor_class
        label = labels.get(cls)
        if label is None:
            label = class_label(cls) if len(labels) < MAX_CLASSES else "other"
            labels[cls] = label
        key = (label, NAMES[cell.state])
        actors[key] = actors.get(key, 0) + 1
        depth = cell.mailbox_depth
        depth_sum[label] = depth_sum.get(label, 0) + depth
        depth_max[label] = max(depth_max.get(label, 0), depth)
    gauge = GaugeMetricFamily(
        "trouper_actors", "Actors by class and life-cycle state.", labels=["actor_class", "state"]
    )
    for (label, state), n in sorted(actors.items()):
        gauge.add_metric([label, state], n)
    yield gauge
    total = GaugeMetricFamily(
        "trouper_mailbox_depth",
        "Messages waiting in the mailboxes of an actor class (summed over its actors).",
        labels=["actor_class"],
    )
    deepest = GaugeMetricFamily(
        "trouper_mailbox_depth_max",
        "The deepest mailbox of an actor class.",
        labels=["actor_class"],
    )
    for label in sorted(depth_sum):
        total.add_metric([label], depth_sum[label])
        deepest.add_metric([label], depth_max[label])
    yield total
    yield deepest

    dead = CounterMetricFamily("trouper_dead_letters", "Dead letters by reason.", labels=["reason"])
    for reason in REASON_LABELS:
        dead.add_metric([reason], counters.dead_letters.get(reason, 0))
    yield dead
    timers = node.kernel.timers
    yield GaugeMetricFamily(
        "trouper_asks_in_flight",
        "Asks waiting for a reply (those made with a timeout).",
        value=timers.asks_pending,
    )
    yield CounterMetricFamily(
        "trouper_ask_timeouts", "Asks that timed out.", value=timers.ask_timeouts
    )


def _sample_every() -> int:
    from ..runtime._counters import SAMPLE_EVERY

    return SAMPLE_EVERY
