"""Rate limiting of repeated identical log records: sans-IO, time passed in.

A node that redials a peer with the wrong cookie fails the same way every
couple of seconds, for ever; one line a minute says as much as thirty.
``RepeatLimiter`` decides, per key, which records go out: the first of a key
always does, then nothing more of that key for ``window`` seconds, and the
first one after the window goes out carrying the number suppressed meanwhile
(so nothing is hidden, only counted).

The key table is bounded (``max_keys``, least recently seen evicted first):
a peer cannot grow it by making every failure text unique. A key evicted
while it had suppressed records loses that count (counted in ``lost``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from .._errors import ConfigurationError

#: Seconds during which further records of a key are suppressed.
WINDOW = 60.0
#: Keys remembered at once.
MAX_KEYS = 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one record: ``emit`` it or not; ``suppressed`` is
    how many of its kind were dropped since the last one emitted (only
    non-zero on an emitted record: the summary it carries)."""

    emit: bool
    suppressed: int = 0


EMIT = Verdict(True)
DROP = Verdict(False)


@dataclass(frozen=True, slots=True)
class RepeatStatistics:
    keys: int
    emitted: int
    suppressed: int
    lost: int


class _Entry:
    __slots__ = ("since", "suppressed")

    def __init__(self, since: float) -> None:
        self.since = since
        self.suppressed = 0


class RepeatLimiter:
    """The state table: key -> (time of the last emitted record, records
    suppressed since). ``now`` must come from a monotonic clock."""

    def __init__(self, window: float = WINDOW, max_keys: int = MAX_KEYS) -> None:
        if not window > 0:
            raise ConfigurationError(f"the repeat window must be > 0 seconds, not {window!r}")
        if max_keys < 1:
            raise ConfigurationError(f"max_keys must be >= 1, not {max_keys!r}")
        self.window = window
        self.max_keys = max_keys
        self._table: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._emitted = 0
        self._suppressed = 0
        self._lost = 0

    def check(self, key: Hashable, now: float) -> Verdict:
        entry = self._table.get(key)
        if entry is None:
            if len(self._table) >= self.max_keys:
                _, old = self._table.popitem(last=False)
                self._lost += old.suppressed
            self._table[key] = _Entry(now)
            self._emitted += 1
            return EMIT
        self._table.move_to_end(key)
        if now - entry.since < self.window:
            entry.suppressed += 1
            self._suppressed += 1
            return DROP
        summary, entry.since, entry.suppressed = entry.suppressed, now, 0
        self._emitted += 1
        return Verdict(True, summary) if summary else EMIT

    def statistics(self) -> RepeatStatistics:
        return RepeatStatistics(len(self._table), self._emitted, self._suppressed, self._lost)
