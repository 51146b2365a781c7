"""A sender with at-least-once delivery and a deduplicating receiver."""

from __future__ import annotations

import msgspec
import trio

import trouper
from trouper.persistence import Deduplicator


class Sent(msgspec.Struct, frozen=True):
    """Event: a message was accepted for delivery."""

    text: str


class Confirmed(msgspec.Struct, frozen=True):
    """Event: the receiver confirmed a delivery."""

    delivery_id: int


class Send(msgspec.Struct, frozen=True):
    text: str


class Order(msgspec.Struct, frozen=True):
    """What the receiver gets: the delivery id travels with it."""

    delivery_id: int
    producer: str
    text: str


class Ack(msgspec.Struct, frozen=True):
    delivery_id: int


class Pending(msgspec.Struct, frozen=True):
    pass


class Crash(msgspec.Struct, frozen=True):
    pass


class Seen(msgspec.Struct, frozen=True):
    pass


class SenderState(msgspec.Struct, frozen=True):
    sent: int


class Replayed(msgspec.Struct, frozen=True):
    pass


class Sender(trouper.AtLeastOnceDelivery):
    redeliver_interval = 0.05
    redeliver_max_interval = 0.2

    def __init__(
        self,
        pid: str,
        url: str,
        to: str | trouper.ActorRef,
        max_unconfirmed: int = 100,
        snapshot_every: int | None = None,
    ) -> None:
        self.persistence_id = pid
        self.store_url = url
        self.to = to
        self.max_unconfirmed = max_unconfirmed
        self.snapshot_every = snapshot_every
        self.sent = 0
        self.replayed = 0

    def snapshot(self) -> SenderState:
        return SenderState(self.sent)

    def restore(self, state: SenderState) -> None:
        self.sent = state.sent

    @trouper.handler
    async def get_replayed(self, msg: Replayed) -> tuple[int, int]:
        return self.sent, self.replayed

    def apply(self, event: Sent | Confirmed) -> None:
        self.replayed += self.recovering
        if isinstance(event, Sent):
            self.sent += 1
            self.deliver(self.to, lambda i: Order(i, self.persistence_id, event.text))
        else:
            self.confirm_delivery(event.delivery_id)

    @trouper.handler
    async def send(self, msg: Send) -> None:
        self.ensure_delivery_capacity()
        await self.persist(Sent(msg.text))

    @trouper.handler
    async def ack(self, msg: Ack) -> None:
        if msg.delivery_id in self.unconfirmed_deliveries:  # a late duplicate ack: nothing to store
            await self.persist(Confirmed(msg.delivery_id))

    @trouper.handler
    async def pending(self, msg: Pending) -> list[int]:
        return self.unconfirmed_deliveries

    @trouper.handler
    async def crash(self, msg: Crash) -> None:
        raise RuntimeError("crash on request")


class Receiver(trouper.Actor):
    """Processes each Order once (reported on ``out``); acknowledges every copy,
    except that it 'loses' its first ``drop_acks`` acknowledgements."""

    def __init__(self, out: trio.MemorySendChannel[str], drop_acks: int = 0) -> None:
        self.out = out
        self.drop_acks = drop_acks
        self.dedup = Deduplicator(window=100)

    @trouper.handler
    async def order(self, msg: Order) -> None:
        if self.dedup.first_time((msg.producer, msg.delivery_id)):
            self.out.send_nowait(msg.text)
        if self.drop_acks:
            self.drop_acks -= 1
            return
        sender = self.ctx.sender
        assert sender is not None
        await sender.tell(Ack(msg.delivery_id))

    @trouper.handler
    async def seen(self, msg: Seen) -> int:
        return self.dedup.duplicates
