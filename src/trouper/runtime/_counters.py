"""Plain counters behind the Prometheus metrics (``trouper.observability``).

The hot path never touches a labelled metric: a cell adds the size of each
batch it handled to the plain integers of its actor class (one addition per
batch), and a collector reads these objects when Prometheus scrapes. Nothing
here imports prometheus-client.

Handler durations are *sampled*: one batch in ``SAMPLE_EVERY`` of each class
is timed (two clock reads), and each message of that batch is recorded with
the batch's mean duration. Timing every message would cost two clock reads
and a bucket search per message, more than the whole local tell.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

#: Time one batch in this many, per actor class.
SAMPLE_EVERY: Final = 16

#: At most this many actor classes get their own label values; the classes
#: seen after that share the ``actor_class="other"`` series (a node that
#: makes classes at run time must not grow Prometheus without bound).
MAX_CLASSES: Final = 500

#: Histogram bounds in seconds (Prometheus' defaults, with finer low end:
#: most handlers take microseconds).
DURATION_BOUNDS: Final = (
    0.00001,
    0.00005,
    0.0001,
    0.0005,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
)

#: Dead-letter reasons are free text (some carry an exception); the metric
#: label is one of these slugs, chosen by the reason's first words.
_REASONS: Final = (
    ("unhandled", "unhandled"),
    ("failed", "failed"),
    ("actor is dead", "dead"),
    ("sent", "sent"),
    ("no such actor", "no_such_actor"),
    ("node down", "node_down"),
    ("stream handler told", "wrong_call"),
    ("channel handler told", "wrong_call"),
)
REASON_LABELS: Final = (*sorted({slug for _, slug in _REASONS}), "other")


def reason_label(reason: str) -> str:
    """The bounded label for a dead letter's free-text ``reason``."""
    for prefix, slug in _REASONS:
        if reason.startswith(prefix):
            return slug
    return "other"


class Histogram:
    """Fixed-bucket counts (not cumulative) and their sum, in seconds."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BOUNDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' ``le`` buckets: (bound, count of values <= bound)."""
        out = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


class ClassCounters:
    """What the cells of one actor class did (monotonic, never reset)."""

    __slots__ = ("countdown", "durations", "failed", "handled", "name", "restarts", "unhandled")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handled = 0  # every message delivered to a handler (or not: unhandled)
        self.failed = 0
        self.unhandled = 0
        self.restarts = 0
        self.countdown = 1  # the first batch of a class is timed
        self.durations = Histogram()


class Counters:
    """A node's counters (``node.kernel.counters``); ``enabled`` is the
    node's ``metrics=`` option: off, cells hold no ``ClassCounters`` and
    count nothing."""

    __slots__ = ("by_class", "dead_letters", "enabled", "other")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.by_class: dict[type, ClassCounters] = {}
        self.other = ClassCounters("other")
        self.dead_letters: dict[str, int] = {}

    def of(self, cls: type) -> ClassCounters | None:
        """The counters of ``cls`` (made on first use), or None when off."""
        if not self.enabled:
            return None
        counters = self.by_class.get(cls)
        if counters is None:
            if len(self.by_class) >= MAX_CLASSES:
                return self.other
            counters = self.by_class[cls] = ClassCounters(class_label(cls))
        return counters

    def classes(self) -> list[ClassCounters]:
        out = list(self.by_class.values())
        if self.other.handled or self.other.restarts:
            out.append(self.other)
        return out

    def dead_letter(self, reason: str) -> None:
        label = reason_label(reason)
        self.dead_letters[label] = self.dead_letters.get(label, 0) + 1


def class_label(cls: type) -> str:
    """The ``actor_class`` label: module and qualified name."""
    return f"{cls.__module__}.{cls.__qualname__}"
