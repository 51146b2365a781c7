"""The bookkeeping of at-least-once delivery, without I/O or a clock.

``DeliveryBook`` is the sender's table of unconfirmed deliveries: ids given
in order, when each is next due, and a backoff that doubles per attempt up
to a ceiling. ``Deduplicator`` is the receiver's bounded memory of what it
has already processed. Time is a parameter everywhere, so both are tested
without Trio (tests/persistence/test_delivery_book.py).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import attrs

from .._errors import ConfigurationError, MailboxFull

__all__ = ["Deduplicator", "DeliveryBook", "DeliveryStatistics", "TooManyUnconfirmed"]


class TooManyUnconfirmed(MailboxFull):
    """``deliver`` found ``max_unconfirmed`` deliveries still unconfirmed.

    Retryable: confirmations free room. (Recovery never raises it: a
    delivery accepted once is always replayed.)
    """

    error_code = "too-many-unconfirmed"
    is_retryable = True
    retry_delay = 0.1


@attrs.frozen
class DeliveryStatistics:
    """A snapshot of one sender's deliveries."""

    unconfirmed: int
    delivered: int  # deliveries ever accepted (including replayed ones)
    confirmed: int
    sends: int  # messages handed to the destination, first tries and resends
    redeliveries: int


@attrs.define
class _Pending:
    destination: Any
    message: Any
    attempts: int  # sends so far
    due: float  # when to (re)send next


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, not {value!r}")
    return float(value)


class DeliveryBook:
    """Unconfirmed deliveries, their ids and redelivery times."""

    def __init__(self, *, interval: float, max_interval: float, limit: int) -> None:
        self.interval = _seconds("redeliver_interval", interval)
        self.max_interval = max(self.interval, _seconds("redeliver_max_interval", max_interval))
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"max_unconfirmed must be an int >= 1, not {limit!r}")
        self.limit = limit
        self.next_id = 1
        self._pending: dict[int, _Pending] = {}  # in id order (insertion order)
        self._confirmed = 0
        self._sends = 0
        self._redeliveries = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, destination: Any, message: Any, now: float, *, replay: bool = False) -> int:
        """Record a delivery due at ``now``; return its id. Over the limit,
        raises ``TooManyUnconfirmed`` unless it is a ``replay`` of one
        accepted before."""
        if not replay and len(self._pending) >= self.limit:
            raise TooManyUnconfirmed(
                f"{len(self._pending)} deliveries unconfirmed (max_unconfirmed={self.limit})"
            )
        delivery_id = self.next_id
        self.next_id += 1
        self._pending[delivery_id] = _Pending(destination, message, 0, now)
        return delivery_id

    def confirm(self, delivery_id: int) -> bool:
        """Forget ``delivery_id``; False if it was not pending (a duplicate confirm)."""
        if self._pending.pop(delivery_id, None) is None:
            return False
        self._confirmed += 1
        return True

    def due(self, now: float) -> list[tuple[int, Any, Any]]:
        """The deliveries to send at ``now``, as ``(id, destination, message)``;
        each is rescheduled with its backoff (interval * 2**attempts, capped)."""
        out = []
        for delivery_id, p in self._pending.items():
            if p.due > now:
                continue
            if p.attempts:
                self._redeliveries += 1
            self._sends += 1
            p.due = now + min(self.interval * 2.0 ** min(p.attempts, 62), self.max_interval)
            p.attempts += 1
            out.append((delivery_id, p.destination, p.message))
        return out

    def next_due(self) -> float | None:
        """When ``due`` next has something to send (None: nothing pending)."""
        return min((p.due for p in self._pending.values()), default=None)

    def pending_ids(self) -> list[int]:
        return list(self._pending)

    def entries(self) -> list[tuple[int, Any, Any]]:
        """Every pending delivery as ``(id, destination, message)``, oldest first."""
        return [(i, p.destination, p.message) for i, p in self._pending.items()]

    def restore(self, next_id: int, entries: list[tuple[int, Any, Any]], now: float) -> None:
        """Take back a snapshot's deliveries, all due at ``now`` (their
        attempts are not kept: a restart resends at once anyway)."""
        self.next_id = next_id
        self._pending = {i: _Pending(to, msg, 0, now) for i, to, msg in entries}

    def statistics(self) -> DeliveryStatistics:
        return DeliveryStatistics(
            unconfirmed=len(self._pending),
            delivered=self.next_id - 1,
            confirmed=self._confirmed,
            sends=self._sends,
            redeliveries=self._redeliveries,
        )


class Deduplicator:
    """The receiver's side: remembers the last ``window`` delivery keys it
    processed (``(producer, delivery_id)``, say), so a redelivered message
    is recognised and dropped. Bounded: the oldest keys are forgotten first;
    a duplicate older than the window is processed again (at-least-once)."""

    def __init__(self, window: int = 10_000) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"window must be an int >= 1, not {window!r}")
        self.window = window
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen (process it); False for a duplicate."""
        if key in self._seen:
            self._seen.move_to_end(key)
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > self.window:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
