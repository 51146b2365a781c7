"""Event subscribers: a bounded queue each, with an overflow policy.

Publishing never waits for a subscriber. Each subscriber holds at most
``buffer`` events; what happens to one more is its policy:

* ``"drop-newest"``: the new event is dropped (the default: what was queued
  stays, in order);
* ``"drop-oldest"``: the oldest queued event is dropped to make room (a
  subscriber that only cares about the latest state);
* ``"disconnect"``: the subscriber is unsubscribed; a ``Subscription`` hands
  out what it had queued, then its iteration raises ``SubscriberOverflow``;
  an actor gets ``SubscriptionEnded``.

Every drop is counted, per subscriber (``statistics()``) and per node
(``node.event_statistics()``).

Two kinds: ``Subscription`` is what ``node.subscribe`` yields (an async
iterator with its own queue); ``ActorSubscription`` delivers into an actor's
mailbox (``ctx.subscribe``). The actor's mailbox is bounded by its own size;
behind a full mailbox the subscription keeps at most ``buffer`` events, of
which at most one is parked in the mailbox's queue of waiters (``Cell.park``,
as the network reader does), so the policy can still choose among the rest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Literal

import attrs
import trio

from .._errors import ConfigurationError, SubscriberOverflow
from .._options import suggestion
from ..protocols import MAX_TOPIC_LENGTH

if TYPE_CHECKING:
    from ._cell import Cell
    from ._events import EventStream
    from ._ref import ActorRef

Policy = Literal["drop-newest", "drop-oldest", "disconnect"]
POLICIES: tuple[str, ...] = ("drop-newest", "drop-oldest", "disconnect")


@attrs.frozen
class SubscriberStatistics:
    """One subscriber's counts (a snapshot): ``delivered`` events it took,
    ``dropped`` ones its policy dropped, ``queued`` ones waiting for it."""

    topic: Hashable
    policy: str
    buffer: int
    queued: int
    delivered: int
    dropped: int
    disconnected: bool


def check_subscription(topic: object, buffer: object, policy: object) -> None:
    check_topic(topic)
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ConfigurationError(f"an event buffer is an int >= 1, not {buffer!r}")
    if policy not in POLICIES:
        hint = suggestion(policy, POLICIES) if isinstance(policy, str) else ""
        raise ConfigurationError(f"unknown overflow policy {policy!r}{hint}")


def check_topic(topic: object) -> None:
    if type(topic) is str and len(topic) > MAX_TOPIC_LENGTH:
        raise ConfigurationError(
            f"a topic is at most {MAX_TOPIC_LENGTH} characters, not {len(topic)}: {topic[:40]!r}..."
        )
    try:
        hash(topic)
    except TypeError:
        raise ConfigurationError(f"a topic must be hashable, not {topic!r}") from None


class Subscriber:
    """What every subscriber shares: its topic, bound, policy and counts."""

    __slots__ = (
        "buffer",
        "closed",
        "delivered",
        "dropped",
        "overflowed",
        "policy",
        "stream",
        "topic",
    )

    def __init__(self, stream: EventStream, topic: Hashable, buffer: int, policy: str) -> None:
        self.stream = stream
        self.topic = topic
        self.buffer = buffer
        self.policy = policy
        self.delivered = 0
        self.dropped = 0
        self.closed = False
        self.overflowed = False

    def offer(self, event: Any) -> bool:
        """Take ``event`` (True) or drop it per the policy (False); never waits."""
        raise NotImplementedError

    @property
    def queued(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def statistics(self) -> SubscriberStatistics:
        return SubscriberStatistics(
            topic=self.topic,
            policy=self.policy,
            buffer=self.buffer,
            queued=self.queued,
            delivered=self.delivered,
            dropped=self.dropped,
            disconnected=self.overflowed,
        )

    def _drop(self) -> None:
        self.dropped += 1
        self.stream.dropped += 1

    def _overflow(self) -> None:
        """The ``disconnect`` policy: one event too many ends the subscription."""
        self._drop()
        self.overflowed = True
        self.stream.disconnected += 1
        self.stream.remove(self)

    def overflow_text(self) -> str:
        return (
            f"the subscriber of topic {self.topic!r} fell {self.buffer} events behind "
            f"(policy 'disconnect') and was unsubscribed"
        )


class Subscription(Subscriber):
    """What ``async with node.subscribe(topic) as events`` yields: iterate it
    (``async for event in events``) or ``await events.receive()``."""

    __slots__ = ("_lot", "_queue")

    def __init__(self, stream: EventStream, topic: Hashable, buffer: int, policy: str) -> None:
        super().__init__(stream, topic, buffer, policy)
        self._queue: deque[Any] = deque()
        self._lot = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return f"<Subscription {self.topic!r} queued={len(self._queue)} dropped={self.dropped}>"

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, event: Any) -> bool:
        if self.closed:
            return False
        queue = self._queue
        if len(queue) >= self.buffer:
            if self.policy == "drop-newest":
                self._drop()
                return False
            if self.policy == "disconnect":
                self._overflow()  # (closes it, waking its receivers)
                return False
            queue.popleft()
            self._drop()
        queue.append(event)
        self.delivered += 1
        if self._lot:
            self._lot.unpark()
        return True

    def receive_nowait(self) -> Any:
        """The next event; ``trio.WouldBlock`` if none is queued."""
        if self._queue:
            return self._queue.popleft()
        if self.overflowed:
            raise SubscriberOverflow(self.overflow_text())
        if self.closed:
            raise trio.ClosedResourceError(
                f"the subscription to {self.topic!r} ended with its async with block"
            )
        raise trio.WouldBlock

    async def receive(self) -> Any:
        """The next event, waiting for one. After a ``disconnect`` overflow,
        what was queued comes first, then ``SubscriberOverflow``; after the
        ``async with`` block, ``trio.ClosedResourceError``."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._queue and not self.closed:
            await self._lot.park()
        event = self.receive_nowait()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        return await self.receive()

    def close(self) -> None:
        """No more events (what is queued may still be received)."""
        self.closed = True
        self._lot.unpark_all()


class ActorSubscription(Subscriber):
    """Delivers a topic's events to an actor as messages (``ctx.subscribe``).

    It sits in the cell's watcher set, so the actor's end unsubscribes it.
    """

    __slots__ = ("cell", "parked", "pending")

    def __init__(
        self, stream: EventStream, cell: Cell, topic: Hashable, buffer: int, policy: str
    ) -> None:
        super().__init__(stream, topic, buffer, policy)
        self.cell = cell
        self.pending: deque[Any] = deque()
        self.parked = False

    def __repr__(self) -> str:
        return f"<ActorSubscription {self.cell.ref.path} {self.topic!r}>"

    @property
    def queued(self) -> int:
        return len(self.pending) + self.parked

    def offer(self, event: Any) -> bool:
        if self.closed:
            return False
        if not self.parked:
            self._hand_in(event)
            self.delivered += 1
            return True
        if len(self.pending) + 1 >= self.buffer:
            if self.policy == "drop-newest" or (self.policy == "drop-oldest" and not self.pending):
                self._drop()  # (the one parked event cannot be taken back)
                return False
            if self.policy == "disconnect":
                self._overflow()
                self.cell.remove_watcher(self)
                from ..actors._messages import SubscriptionEnded

                # After what is queued (the parked event takes it along).
                self.pending.append(SubscriptionEnded(self.topic, self.overflow_text()))
                return False
            self.pending.popleft()
            self._drop()
        self.pending.append(event)
        self.delivered += 1
        return True

    def _hand_in(self, msg: Any) -> None:
        """Into the mailbox, or parked behind it as its only parked event."""
        item = (msg, None, None)
        cell = self.cell
        if not cell.try_deliver(item):
            self.parked = True
            cell.park(item, self._admitted)

    def _admitted(self) -> None:
        """The parked event entered the mailbox (or the actor died)."""
        self.parked = False
        pending = self.pending
        if self.cell.dead:
            pending.clear()
            return
        while pending and not self.parked:
            self._hand_in(pending.popleft())

    def watched_stopped(self, ref: ActorRef, reason: str) -> None:
        """The actor stopped: the subscription goes with it."""
        self.stream.remove(self)

    def close(self) -> None:
        """No more events; what is pending still goes in (``discard`` drops it)."""
        self.closed = True

    def discard(self) -> None:
        self.pending.clear()
