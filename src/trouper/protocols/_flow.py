"""Credit-based flow control, as pure bookkeeping: per stream, and per
destination actor for plain tells.

Streams:

The consumer grants credits (``StreamOpen.credit``, then ``StreamCredit.n``);
the producer spends one per ``StreamItem`` and stops at zero. The consumer
never holds more than ``window`` unprocessed items, whatever the producer does:
an item beyond the credits granted is a ``RemoteProtocolError``.

Credits are returned in batches (default: once half the window has been
processed) rather than one ``StreamCredit`` per item, so a fast stream costs
about two credit envelopes per window instead of one per item, while the
producer still has the other half of the window to keep busy with.

Tells (``TellCredits``, ``CreditLedger``): the same idea per target actor, so
that a full mailbox on the receiving node never has to stall the link's
reader: the sender holds at most ``window`` unacknowledged tells per target,
and the receiver can always take them off the wire (see
docs/wire-protocol.md, "Backpressure").
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from trouper._errors import ConfigurationError, RemoteProtocolError

__all__ = ["CreditGranter", "CreditLedger", "CreditWindow", "TellCredits"]


class CreditWindow:
    """The credits a producer may still spend."""

    __slots__ = ("available",)

    def __init__(self, initial: int) -> None:
        if initial < 0:
            raise ConfigurationError(f"initial credit cannot be negative, got {initial}")
        self.available = initial

    def __repr__(self) -> str:
        return f"<CreditWindow available={self.available}>"

    @property
    def can_send(self) -> bool:
        return self.available > 0

    def consume(self, n: int = 1) -> None:
        """Spend ``n`` credits; spending credits not granted is a
        ``RemoteProtocolError`` (on the consumer's side it means the peer overran)."""
        if n < 1:
            raise ValueError(f"consume() takes a positive count, got {n}")
        if n > self.available:
            raise RemoteProtocolError(
                f"stream credit exceeded: {n} item(s), {self.available} credit(s)"
            )
        self.available -= n

    def grant(self, n: int) -> None:
        if n < 1:
            raise RemoteProtocolError(f"a credit grant must be positive, got {n}")
        self.available += n


class CreditGranter:
    """The consumer's side: decides when to send a ``StreamCredit``.

    ``initial`` is the credit to put in ``StreamOpen``. Call ``on_item()`` for
    every ``StreamItem`` received and ``on_processed()`` as the application
    takes items; when the latter returns ``n > 0``, send ``StreamCredit(id, n)``.
    """

    __slots__ = ("_processed", "_producer", "threshold", "window")

    def __init__(self, window: int, threshold: int | None = None) -> None:
        if window < 1:
            raise ConfigurationError(f"stream window must be positive, got {window}")
        if threshold is None:
            threshold = max(1, window // 2)
        if not 1 <= threshold <= window:
            raise ConfigurationError(f"threshold must be between 1 and {window}, got {threshold}")
        self.window = window
        self.threshold = threshold
        # Our mirror of the producer's window, to catch a peer that overruns.
        self._producer = CreditWindow(window)
        self._processed = 0

    @property
    def initial(self) -> int:
        return self.window

    @property
    def outstanding(self) -> int:
        """Credits the producer holds and has not yet spent."""
        return self._producer.available

    @property
    def buffered(self) -> int:
        """Items received but not yet processed."""
        return self.window - self._producer.available - self._processed

    def on_item(self) -> None:
        """An item arrived; ``RemoteProtocolError`` if the producer had no credit."""
        self._producer.consume()

    def on_processed(self, n: int = 1) -> int:
        """``n`` items were processed; return the credits to grant now (or 0)."""
        if n < 1:
            raise ValueError(f"on_processed() takes a positive count, got {n}")
        if n > self.buffered:
            raise ValueError(f"{n} item(s) processed but only {self.buffered} received")
        self._processed += n
        if self._processed < self.threshold:
            return 0
        grant, self._processed = self._processed, 0
        self._producer.grant(grant)
        return grant


K = TypeVar("K", bound=Hashable)


class TellCredits(Generic[K]):
    """The sender's side of per-destination credit: how many more ``Tell``
    envelopes it may send to each target of one peer.

    Every target starts with ``window`` credits; a target holding all of them
    has no entry at all, so the table only ever holds targets with messages
    in flight (it shrinks back as credit returns).
    """

    __slots__ = ("_available", "window")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ConfigurationError(f"the tell window must be positive, got {window}")
        self.window = window
        self._available: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._available)

    def available(self, key: K) -> int:
        return self._available.get(key, self.window)

    def try_take(self, key: K) -> bool:
        """Spend one credit for ``key``; False (nothing spent) if it has none."""
        left = self._available.get(key, self.window)
        if left == 0:
            return False
        self._available[key] = left - 1
        return True

    def grant(self, key: K, n: int) -> None:
        """The peer returned ``n`` credits. More than is outstanding is capped
        (a confused peer cannot make us exceed the window it set)."""
        left = self._available.get(key)
        if left is None:
            return
        left += n
        if left >= self.window:
            del self._available[key]
        else:
            self._available[key] = left

    def reset(self) -> None:
        """A new connection: the peer's ledger starts from zero, so do we."""
        self._available.clear()


class CreditLedger(Generic[K]):
    """The receiver's side: credit owed back to one peer, per target.

    Credit is owed for every ``Tell`` taken off the wire, whatever became of
    it (delivered, parked, dead-lettered), and returned in batches of
    ``threshold``. The sender blocks only with ``window`` credits outstanding;
    with ``threshold <= window // 2`` at least half of those are still on
    their way in and will push the count over the threshold, so no timer is
    needed for progress. ``flush`` returns the small remainders (the runtime
    calls it periodically) so that idle targets leave no entry behind.
    """

    __slots__ = ("_owed", "threshold")

    def __init__(self, window: int, threshold: int | None = None) -> None:
        if window < 1:
            raise ConfigurationError(f"the tell window must be positive, got {window}")
        self.threshold = max(1, window // 2) if threshold is None else threshold
        if not 1 <= self.threshold <= window:
            raise ConfigurationError(f"threshold must be between 1 and {window}")
        self._owed: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._owed)

    def owe(self, key: K, n: int = 1) -> int:
        """Record ``n`` tells for ``key``; return the credit to send now (or 0)."""
        owed = self._owed.get(key, 0) + n
        if owed >= self.threshold:
            self._owed.pop(key, None)
            return owed
        self._owed[key] = owed
        return 0

    def flush(self) -> list[tuple[K, int]]:
        """Everything still owed, cleared."""
        owed, self._owed = self._owed, {}
        return list(owed.items())

    def reset(self) -> None:
        self._owed.clear()
