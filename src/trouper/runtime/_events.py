"""Publish/subscribe on a node, and the dead-letter office built on it.

``EventStream`` (``node.kernel.events``) keeps the subscribers of each topic
(see ``_subscribers`` for their bounded queues and policies). Publishing
never waits: each subscriber takes the event or its policy drops it.

Topics that cross nodes are strings: with a remote layer, the node's
``EventBridge`` (``trouper.remote``) hears of every change in how many local
subscribers a string topic has (and tells the other nodes), and
``publish`` hands it string-topic events for the nodes that announced
subscribers. Any other hashable topic (``DeadLetter``, a tuple...) stays
local.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ..actors._messages import DeadLetter
from ..protocols import MAX_TOPIC_LENGTH
from ._subscribers import (
    ActorSubscription,
    Subscriber,
    Subscription,
    check_subscription,
    check_topic,
)

if TYPE_CHECKING:
    from ._cell import Cell
    from ._counters import Counters

log = logging.getLogger("trouper.deadletters")


@attrs.frozen
class EventStatistics:
    """A node's event counts (``node.event_statistics()``, a snapshot).

    Local: ``topics`` and ``subscribers`` now; ``published`` calls to
    ``publish``; ``delivered`` events local subscribers took (from local
    publishers and from other nodes); ``dropped`` ones their policies dropped;
    ``disconnected`` subscribers their ``disconnect`` policy ended. Across
    nodes: ``remote_topics`` / ``remote_subscribers`` the other nodes
    announced; ``sent`` event messages to other nodes (one per node per
    publish) and ``received`` from them; ``remote_dropped`` not sent because
    that node's outbox was full (the publisher never waits for a peer).
    """

    topics: int
    subscribers: int
    published: int
    delivered: int
    dropped: int
    disconnected: int
    remote_topics: int = 0
    remote_subscribers: int = 0
    sent: int = 0
    received: int = 0
    remote_dropped: int = 0


class EventBridge(Protocol):
    """What the event stream asks of the remote layer (``trouper.remote``)."""

    def publish(self, topic: str, msg: Any) -> int:
        """Send ``msg`` to every node with subscribers of ``topic`` (never
        waits); returns how many subscribers those nodes announced."""

    def interest_changed(self, topic: str) -> None:
        """The number of local subscribers of ``topic`` changed."""

    def subscribers(self, topic: str) -> int:
        """Subscribers of ``topic`` the other nodes announced."""

    def statistics(self, local: EventStatistics) -> EventStatistics: ...


class EventStream:
    __slots__ = (
        "_actors",
        "_topics",
        "bridge",
        "delivered",
        "disconnected",
        "dropped",
        "published",
    )

    def __init__(self) -> None:
        self._topics: dict[Hashable, dict[Subscriber, None]] = {}
        self._actors: dict[tuple[Cell, Hashable], ActorSubscription] = {}
        self.bridge: EventBridge | None = None
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.disconnected = 0

    # ---------------------------------------------------------- publishing

    def publish(self, topic: Hashable, event: Any) -> int:
        """Offer ``event`` to every subscriber of ``topic``, here and (for a
        string topic) on other nodes; returns how many subscribers it reached
        (local ones that took it, plus what the other nodes announced)."""
        if type(topic) is str:
            if len(topic) > MAX_TOPIC_LENGTH:
                check_topic(topic)
            bridge = self.bridge
            if bridge is not None:
                # First: a message that cannot be encoded fails the whole
                # publish, before anyone has it.
                remote = bridge.publish(topic, event)
                self.published += 1
                return remote + self.deliver(topic, event)
        self.published += 1
        return self.deliver(topic, event)

    def deliver(self, topic: Hashable, event: Any) -> int:
        """Offer ``event`` to the local subscribers only; how many took it."""
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        taken = 0
        # A copy: a "disconnect" overflow unsubscribes in the middle.
        for subscriber in tuple(subscribers):
            if subscriber.offer(event):
                taken += 1
        self.delivered += taken
        return taken

    def count(self, topic: Hashable) -> int:
        """Local subscribers of ``topic``."""
        return len(self._topics.get(topic, ()))

    def subscribers(self, topic: Hashable) -> int:
        """Subscribers a publish on ``topic`` would reach now: local ones,
        plus those other nodes announced (for a string topic)."""
        local = self.count(topic)
        if self.bridge is not None and type(topic) is str:
            return local + self.bridge.subscribers(topic)
        return local

    def interest(self) -> dict[str, int]:
        """Local subscribers per string topic (what other nodes are told)."""
        return {t: len(s) for t, s in self._topics.items() if type(t) is str}

    # -------------------------------------------------------- subscribing

    def add(self, subscriber: Subscriber) -> None:
        topic = subscriber.topic
        self._topics.setdefault(topic, {})[subscriber] = None
        if self.bridge is not None and type(topic) is str:
            self.bridge.interest_changed(topic)

    def remove(self, subscriber: Subscriber) -> None:
        """Unsubscribe (idempotent); the subscriber is closed."""
        if isinstance(subscriber, ActorSubscription):
            key = (subscriber.cell, subscriber.topic)
            if self._actors.get(key) is subscriber:
                del self._actors[key]
        if subscriber.closed:
            return
        subscriber.close()
        topic = subscriber.topic
        subscribers = self._topics.get(topic)
        if subscribers is None or subscriber not in subscribers:
            return
        del subscribers[subscriber]
        if not subscribers:
            del self._topics[topic]
        if self.bridge is not None and type(topic) is str:
            self.bridge.interest_changed(topic)

    @asynccontextmanager
    async def subscribe(
        self, topic: Hashable, buffer: int = 1000, policy: str = "drop-newest"
    ) -> AsyncIterator[Subscription]:
        """The events published on ``topic`` while the block runs."""
        check_subscription(topic, buffer, policy)
        subscription = Subscription(self, topic, buffer, policy)
        self.add(subscription)
        try:
            yield subscription
        finally:
            self.remove(subscription)

    def subscribe_actor(
        self, cell: Cell, topic: Hashable, buffer: int, policy: str
    ) -> ActorSubscription:
        """Deliver ``topic``'s events to the actor until it unsubscribes or
        stops; subscribing again to the same topic changes nothing."""
        check_subscription(topic, buffer, policy)
        found = self._actors.get((cell, topic))
        if found is not None:
            return found
        subscription = ActorSubscription(self, cell, topic, buffer, policy)
        if cell.add_watcher(subscription) is not None:
            subscription.close()  # a dead actor subscribes to nothing
            return subscription
        self._actors[(cell, topic)] = subscription
        self.add(subscription)
        return subscription

    def unsubscribe_actor(self, cell: Cell, topic: Hashable) -> None:
        found = self._actors.get((cell, topic))
        if found is not None:
            cell.remove_watcher(found)
            self.remove(found)
            found.discard()  # the actor wants no more of them

    def statistics(self) -> EventStatistics:
        local = EventStatistics(
            topics=len(self._topics),
            subscribers=sum(len(s) for s in self._topics.values()),
            published=self.published,
            delivered=self.delivered,
            dropped=self.dropped,
            disconnected=self.disconnected,
        )
        return local if self.bridge is None else self.bridge.statistics(local)


@attrs.frozen
class DeadLetterStats:
    count: int
    dropped: int


class DeadLetters:
    """The dead-letter office of a node (its actor lives at /system/deadletters)."""

    __slots__ = ("_counters", "_events", "count")

    def __init__(self, events: EventStream, counters: Counters | None = None) -> None:
        self._events = events
        self._counters = counters
        self.count = 0

    def record(self, msg: Any, sender: Any, recipient: Any, reason: str) -> None:
        self.count += 1
        if self._counters is not None:
            self._counters.dead_letter(reason)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("dead letter to %s (%s): %r", recipient, reason, msg)
        self._events.deliver(DeadLetter, DeadLetter(msg, sender, recipient, reason))

    def subscribe(self, buffer: int = 1000) -> Any:
        """``async with node.dead_letters.subscribe() as letters: async for d in letters``"""
        return self._events.subscribe(DeadLetter, buffer)
