"""Cluster-wide events: the node's ``EventBridge`` between its event stream
and its peers.

Each node tells every peer how many local subscribers it has per string
topic (``Interest``: a snapshot when a connection comes up, then the counts
that changed, gathered for one timer tick so that a thousand subscriptions
make one envelope). A publish sends ONE ``Publish`` to each node that
announced subscribers for its topic; that node fans it out locally and never
forwards it. So a node with no subscribers of a topic gets nothing, and a
publish costs one encoding and one envelope per interested node.

The publisher never waits for a peer: the event rides the peer's outbox as a
control message would, and when that outbox is over ``max_outbox_bytes`` the
event is dropped for that node (counted in ``remote_dropped``). A peer that
reads nothing is then the outbox's slow consumer: it is disconnected after
``slow_consumer_timeout``. What a peer may make this node hold is its table
of topics, bounded by ``max_event_topics`` (and 255 characters a topic).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .. import _errors as errors
from ..actors import PoisonPill
from ..protocols import MAX_TOPIC_LENGTH, Interest, Publish

if TYPE_CHECKING:
    from ..runtime import EventStatistics
    from ._layer import Remoting
    from ._peer import Peer

log = logging.getLogger("trouper.remote")

#: Topics per ``Interest`` envelope in a snapshot (a frame stays small).
_CHUNK = 500


class PeerEvents:
    """What one peer announced, and the events exchanged with it."""

    __slots__ = ("dropped", "received", "sent", "topics")

    def __init__(self) -> None:
        self.topics: dict[str, int] = {}
        self.sent = 0
        self.received = 0
        self.dropped = 0


class EventBridge:
    """The remote half of a node's events (``runtime.EventBridge``)."""

    def __init__(self, remoting: Remoting) -> None:
        self.remoting = remoting
        self.events = remoting.node.kernel.events
        #: topic -> {peer: subscribers it announced}, for the publish path.
        self.by_topic: dict[str, dict[Peer, int]] = {}
        self.peers: dict[Peer, PeerEvents] = {}
        self.dirty: dict[str, None] = {}
        self.flush_due = False
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.events.bridge = self

    # ----------------------------------------------------------- publishing

    def publish(self, topic: str, msg: Any) -> int:
        interested = self.by_topic.get(topic)
        if not interested:
            return 0
        try:
            name, payload = self.remoting.encode(msg, what="event")
        except errors.FrameTooLarge:
            raise
        except errors.TrouperError as exc:
            raise errors.ConfigurationError(
                f"cannot publish on topic {topic!r} to other nodes: {exc}"
            ) from exc
        env = Publish(topic, name, payload)
        reached = 0
        for peer, count in interested.items():
            state = self.peers[peer]
            conn = peer.conn
            if (
                peer.status == "down"
                or peer.outbox.full
                or (conn is not None and conn.goodbye_sent)
            ):
                state.dropped += 1
                self.dropped += 1
                continue
            peer.send_quiet(env)
            state.sent += 1
            self.sent += 1
            reached += count
        return reached

    def subscribers(self, topic: str) -> int:
        interested = self.by_topic.get(topic)
        return sum(interested.values()) if interested else 0

    # ------------------------------------------------- announcing interest

    def interest_changed(self, topic: str) -> None:
        self.dirty[topic] = None
        if not self.flush_due:
            self.flush_due = True
            self.remoting.node.kernel.timers.call_soon_after(0.0, self.flush)

    def flush(self) -> None:
        """Tell every peer the counts that changed since the last flush."""
        self.flush_due = False
        dirty, self.dirty = self.dirty, {}
        events = self.events
        counts = {topic: events.count(topic) for topic in dirty}
        for start in range(0, len(counts), _CHUNK):
            env = Interest(dict(list(counts.items())[start : start + _CHUNK]))
            for peer in self.remoting.peers.values():
                if peer.status == "up":
                    peer.send_quiet(env)

    def peer_up(self, peer: Peer) -> None:
        """A connection came up: tell the peer everything (a snapshot)."""
        self.peers.setdefault(peer, PeerEvents())
        items = list(self.events.interest().items())
        for start in range(0, max(len(items), 1), _CHUNK):
            peer.send_quiet(Interest(dict(items[start : start + _CHUNK]), snapshot=start == 0))

    def peer_down(self, peer: Peer) -> None:
        state = self.peers.pop(peer, None)
        if state is not None:
            self._forget(peer, state)

    def _forget(self, peer: Peer, state: PeerEvents) -> None:
        for topic in state.topics:
            interested = self.by_topic.get(topic)
            if interested is not None:
                interested.pop(peer, None)
                if not interested:
                    del self.by_topic[topic]
        state.topics = {}

    # --------------------------------------------------------- from peers

    def on_interest(self, peer: Peer, env: Interest) -> None:
        state = self.peers.get(peer)
        if state is None or peer.status == "down":
            return
        if env.snapshot:
            self._forget(peer, state)
        topics = state.topics
        limit = peer.config.max_event_topics
        refused, example = 0, ""
        for topic, count in env.counts.items():
            if count == 0:
                if topics.pop(topic, None) is not None:
                    interested = self.by_topic[topic]
                    del interested[peer]
                    if not interested:
                        del self.by_topic[topic]
                continue
            if topic not in topics and (len(topics) >= limit or len(topic) > MAX_TOPIC_LENGTH):
                refused += 1
                example = example or topic[:40]
                continue
            topics[topic] = count
            self.by_topic.setdefault(topic, {})[peer] = count
        if refused:
            from ._inbound import bad_message

            bad_message(
                peer,
                f"{refused} event topics ignored (over max_event_topics={limit}, "
                f"or over {MAX_TOPIC_LENGTH} characters), e.g. {example!r}",
            )

    def on_publish(self, peer: Peer, env: Publish) -> None:
        state = self.peers.get(peer)
        if state is None:
            return
        state.received += 1
        self.received += 1
        if not self.events.count(env.topic):
            return  # unsubscribed meanwhile: nobody to decode it for
        from ._inbound import bad_message, decode

        try:
            msg = decode(peer, env.type_name, env.payload)
        except errors.UnhandledMessage as exc:
            bad_message(peer, f"event on topic {env.topic[:40]!r}: {exc}")
            return
        if type(msg) is PoisonPill:
            # It would stop every actor subscribed, /system ones included:
            # a peer stops actors only one at a time, under /user (a Tell).
            bad_message(peer, f"a PoisonPill published on topic {env.topic[:40]!r}")
            return
        self.events.deliver(env.topic, msg)

    # --------------------------------------------------------- statistics

    def statistics(self, local: EventStatistics) -> EventStatistics:
        return attrs.evolve(
            local,
            remote_topics=len(self.by_topic),
            remote_subscribers=sum(sum(p.values()) for p in self.by_topic.values()),
            sent=self.sent,
            received=self.received,
            remote_dropped=self.dropped,
        )

    def of_peer(self, peer: Peer) -> PeerEvents:
        return self.peers.get(peer) or PeerEvents()


def on_interest(peer: Peer, env: Interest) -> None:
    peer.remoting.events.on_interest(peer, env)


def on_publish(peer: Peer, env: Publish) -> None:
    peer.remoting.events.on_publish(peer, env)


#: The inbound handlers of the two event envelopes (``_inbound.HANDLERS``).
EVENT_HANDLERS: dict[type, Callable[[Peer, Any], None]] = {
    Interest: on_interest,
    Publish: on_publish,
}
