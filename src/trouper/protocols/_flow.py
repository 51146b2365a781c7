"""Credit-based flow control for streams, as pure bookkeeping.

The consumer grants credits (``StreamOpen.credit``, then ``StreamCredit.n``);
the producer spends one per ``StreamItem`` and stops at zero. The consumer
never holds more than ``window`` unprocessed items, whatever the producer does:
an item beyond the credits granted is a ``ProtocolError``.

Credits are returned in batches (default: once half the window has been
processed) rather than one ``StreamCredit`` per item, so a fast stream costs
about two credit envelopes per window instead of one per item, while the
producer still has the other half of the window to keep busy with.
"""

from __future__ import annotations

from trouper._errors import ConfigurationError, ProtocolError

__all__ = ["CreditGranter", "CreditWindow"]


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
        ``ProtocolError`` (on the consumer's side it means the peer overran)."""
        if n < 1:
            raise ValueError(f"consume() takes a positive count, got {n}")
        if n > self.available:
            raise ProtocolError(f"stream credit exceeded: {n} item(s), {self.available} credit(s)")
        self.available -= n

    def grant(self, n: int) -> None:
        if n < 1:
            raise ProtocolError(f"a credit grant must be positive, got {n}")
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
        """An item arrived; ``ProtocolError`` if the producer had no credit."""
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
