"""Local publish/subscribe, and the dead-letter office built on it.

Subscribers get a bounded channel. Publishing never blocks the publisher: a
subscriber that falls behind loses the newest events (counted in
``dropped``), never the publisher's time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ..actors._messages import DeadLetter

log = logging.getLogger("trouper.deadletters")


class EventStream:
    __slots__ = ("_topics", "dropped")

    def __init__(self) -> None:
        self._topics: dict[Hashable, set[trio.MemorySendChannel[Any]]] = {}
        self.dropped = 0

    def publish(self, topic: Hashable, event: Any) -> int:
        """Offer ``event`` to every subscriber of ``topic``; returns how many took it."""
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        delivered = 0
        for channel in list(subscribers):
            try:
                channel.send_nowait(event)
                delivered += 1
            except trio.WouldBlock:
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                subscribers.discard(channel)
        return delivered

    @asynccontextmanager
    async def subscribe(
        self, topic: Hashable, buffer: int = 1000
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Any]]:
        """A channel of the events published on ``topic`` while the block runs."""
        send, recv = trio.open_memory_channel[Any](buffer)
        subscribers = self._topics.setdefault(topic, set())
        subscribers.add(send)
        try:
            async with recv:
                yield recv
        finally:
            subscribers.discard(send)
            if not subscribers:
                self._topics.pop(topic, None)
            send.close()


@attrs.frozen
class DeadLetterStats:
    count: int
    dropped: int


class DeadLetters:
    """The dead-letter office of a node (its actor lives at /system/deadletters)."""

    __slots__ = ("_events", "count")

    def __init__(self, events: EventStream) -> None:
        self._events = events
        self.count = 0

    def record(self, msg: Any, sender: Any, recipient: Any, reason: str) -> None:
        self.count += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("dead letter to %s (%s): %r", recipient, reason, msg)
        self._events.publish(DeadLetter, DeadLetter(msg, sender, recipient, reason))

    def subscribe(self, buffer: int = 1000) -> Any:
        """``async with node.dead_letters.subscribe() as letters: async for d in letters``"""
        return self._events.subscribe(DeadLetter, buffer)
