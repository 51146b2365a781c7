"""``AtLeastOnceDelivery``: a persistent actor that resends until confirmed.

Akka's model: the sender persists its own events, and its ``apply`` calls
``self.deliver(destination, make)`` for a message to send and
``self.confirm_delivery(id)`` when a confirmation event is applied. Since
both run in ``apply``, recovery replays them: the deliveries still
unconfirmed after a restart are exactly those of the log, with the same ids,
and are sent again once recovery ends. The receiver confirms (a message back
to ``ctx.sender``, which the sender persists as an event) and drops the
duplicates a resend can cause with a ``Deduplicator``.

Live, a delivery is sent at once, then resent every ``redeliver_interval``
doubling up to ``redeliver_max_interval`` until confirmed. At most
``max_unconfirmed`` wait (``deliver`` raises ``TooManyUnconfirmed`` beyond).
A destination is an ``ActorRef`` (local or remote) or a registered name,
looked up at each send, so a receiver that was stopped and started again
under its name gets what it missed.

With ``snapshot_every``, a snapshot holds the actor's own state
(``snapshot()``) and the unconfirmed deliveries (``DeliverySnapshot``), so
recovery replays only the events after it. A delivery to a ref cannot be
stored (a ref names one incarnation of an actor): while one is pending,
snapshots are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .._errors import TrouperError
from ..actors import handler
from ..protocols import default_registry
from ._actor import PersistentActor
from ._book import DeliveryBook, DeliveryStatistics, TooManyUnconfirmed
from ._codec import EventCodec, Upcast

if TYPE_CHECKING:
    from ..runtime import ActorRef, Timer

__all__ = ["AtLeastOnceDelivery"]


class RedeliveryTick(msgspec.Struct, frozen=True):
    """The sender's own timer message: time to resend what is due."""


class PendingDelivery(msgspec.Struct, array_like=True, frozen=True):
    """One unconfirmed delivery inside a snapshot."""

    id: int
    to: str  # a registered name: refs cannot be stored
    type: str  # the message's registered type name
    message: msgspec.Raw


class DeliverySnapshot(msgspec.Struct, array_like=True, frozen=True):
    """A snapshot of an ``AtLeastOnceDelivery`` actor: its own state, then
    the deliveries (so that recovery need not replay the events before)."""

    type: str
    state: msgspec.Raw
    next_id: int
    pending: list[PendingDelivery]


default_registry.register(DeliverySnapshot, "trouper.persistence:DeliverySnapshot")
_codec = EventCodec()
log = logging.getLogger("trouper.persistence")


class AtLeastOnceDelivery(PersistentActor):
    """A ``PersistentActor`` that delivers messages until they are confirmed."""

    #: First resend after this many seconds; each later one waits twice as long...
    redeliver_interval: float = 1.0
    #: ... up to this.
    redeliver_max_interval: float = 30.0
    #: Deliveries waiting for confirmation at most (``TooManyUnconfirmed`` beyond).
    max_unconfirmed: int = 10_000

    _deliveries: DeliveryBook | None = None
    _redelivery_timer: Timer | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DeliveryBook(  # check the class's settings now, not at the first delivery
            interval=cls.redeliver_interval,
            max_interval=cls.redeliver_max_interval,
            limit=cls.max_unconfirmed,
        )

    def _book(self) -> DeliveryBook:
        book = self._deliveries
        if book is None:
            book = self._deliveries = DeliveryBook(
                interval=self.redeliver_interval,
                max_interval=self.redeliver_max_interval,
                limit=self.max_unconfirmed,
            )
        return book

    def deliver(self, destination: ActorRef | str, make: Callable[[int], Any]) -> int:
        """Send ``make(delivery_id)`` to ``destination`` until confirmed; call it
        from ``apply``. Returns the delivery id (the same in every replay)."""
        book = self._book()
        delivery_id = book.next_id
        message = make(delivery_id)
        now = trio.current_time()
        book.add(destination, message, now, replay=self.recovering)
        if not self.recovering:
            self._send_due(now)
        return delivery_id

    def ensure_delivery_capacity(self, n: int = 1) -> None:
        """Raise ``TooManyUnconfirmed`` unless ``n`` more deliveries fit: call
        it before persisting an event whose ``apply`` delivers, so a full
        sender refuses the request instead of storing the event and failing
        in ``apply`` (the event would then be delivered after the restart)."""
        book = self._book()
        if len(book) + n > book.limit:
            raise TooManyUnconfirmed(
                f"{len(book)} deliveries unconfirmed (max_unconfirmed={book.limit})"
            )

    def confirm_delivery(self, delivery_id: int) -> bool:
        """Stop resending ``delivery_id`` (call it from ``apply``); False if
        it was not pending (already confirmed: a duplicate confirmation)."""
        return self._book().confirm(delivery_id)

    @property
    def unconfirmed_deliveries(self) -> list[int]:
        """The ids still waiting for a confirmation, oldest first."""
        return self._book().pending_ids()

    def delivery_statistics(self) -> DeliveryStatistics:
        return self._book().statistics()

    async def _after_recovery(self) -> None:
        await super()._after_recovery()
        self._send_due(trio.current_time())
        # Half the interval: a resend is at most half an interval late.
        tick = self._book().interval / 2
        self._redelivery_timer = self.ctx.every(tick, RedeliveryTick())

    def _snapshot_state(self) -> Any:
        book = self._book()
        pending = []
        for delivery_id, to, message in book.entries():
            if not isinstance(to, str):
                # A ref names one incarnation of an actor: it cannot be
                # stored. Skipped until no delivery to a ref is pending.
                log.info("%s: snapshot skipped: a delivery to a ref is pending", to)
                return None
            name, raw = _codec.payload(message)
            pending.append(PendingDelivery(delivery_id, to, name, raw))
        name, state = _codec.payload(self.snapshot())
        return DeliverySnapshot(name, state, book.next_id, pending)

    def _restore_state(self, state: Any, upcast: Upcast | None) -> None:
        if not isinstance(state, DeliverySnapshot):  # taken before the class delivered
            super()._restore_state(state, upcast)
            return
        where = f"{self.persistence_id} snapshot"
        self.restore(_codec.decode(where, state.type, state.state, upcast))
        entries = [
            (p.id, p.to, _codec.decode(where, p.type, p.message, upcast)) for p in state.pending
        ]
        self._book().restore(state.next_id, entries, trio.current_time())

    @handler
    async def _redeliver(self, msg: RedeliveryTick) -> None:
        self._send_due(trio.current_time())

    def _send_due(self, now: float) -> None:
        for _, destination, message in self._book().due(now):
            ref = destination
            if isinstance(destination, str):
                ref = self.ctx.node.registry.get(destination)
                if ref is None:
                    continue  # not (yet) started again: the next resend looks again
            try:
                ref.tell_nowait(message)
            except TrouperError:
                # MailboxFull, NodeDown, ActorDead...: the delivery stays
                # pending and its next resend tries again.
                continue
