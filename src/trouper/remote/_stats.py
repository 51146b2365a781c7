"""``PeerStatistics``: what one peer holds of this node, and this node of it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ._peer import Peer


@attrs.frozen
class PeerStatistics:
    """What one peer holds of this node, and this node of it (a snapshot).

    Every count here is bounded by an option of ``RemoteConfig``; the names
    say which: ``pending_asks`` by ``max_pending_asks``, ``inbound_asks`` by
    ``max_inbound_asks``, ``parked`` by ``max_parked`` (and ``tell_window``
    per actor), ``outbox_bytes`` by ``max_outbox_bytes`` (times
    ``outbox_hard_factor``), ``streams_in`` by ``max_streams``, ``channels_in``
    by ``max_channels``, ``watched_by``
    by ``max_watches``, ``names`` by ``max_names``, ``requests`` by
    ``max_peer_requests``, ``group_members`` by ``max_group_members``,
    ``event_topics`` by ``max_event_topics``.
    ``events_sent`` / ``events_received`` count ``Publish`` envelopes (one
    per publish whose topic the peer subscribes to); ``events_dropped`` the
    ones not sent because its outbox was full.
    """

    node_id: str
    incarnation: int
    status: str
    connected: bool
    paused: bool
    pending_asks: int
    inbound_asks: int
    parked: int
    parked_targets: int
    outbox_bytes: int
    outbox_envelopes: int
    streams_out: int
    streams_in: int
    watching: int
    watched_by: int
    names: int
    requests: int
    credit_targets: int
    owed_targets: int
    credit_waiters: int
    group_members: int = 0
    event_topics: int = 0
    events_sent: int = 0
    events_received: int = 0
    events_dropped: int = 0
    channels_out: int = 0
    channels_in: int = 0


def statistics(peer: Peer) -> PeerStatistics:
    events = peer.remoting.events.of_peer(peer)
    return PeerStatistics(
        node_id=peer.node_id,
        incarnation=peer.incarnation,
        status=peer.status,
        connected=peer.conn is not None,
        paused=peer.paused,
        pending_asks=len(peer.asks),
        inbound_asks=peer.inbound_asks,
        parked=peer.parked_total,
        parked_targets=len(peer.parked),
        outbox_bytes=peer.outbox.bytes,
        outbox_envelopes=len(peer.outbox),
        streams_out=len(peer.streams),
        streams_in=len(peer.producers),
        watching=len(peer.watching),
        watched_by=peer.watch_count,
        names=len(peer.names),
        requests=peer.requests,
        credit_targets=len(peer.credits),
        owed_targets=len(peer.ledger),
        credit_waiters=len(peer.credit_waiters),
        group_members=peer.remoting.groups.count(peer.node_id),
        event_topics=len(events.topics),
        events_sent=events.sent,
        events_received=events.received,
        events_dropped=events.dropped,
        channels_out=len(peer.channels.opened),
        channels_in=len(peer.channels.accepted),
    )


class Traffic:
    """What went over the links to one peer, across its connections (plain
    counts for the metrics: bytes at each read and write, frames per batch)."""

    __slots__ = ("received_bytes", "received_frames", "sent_bytes", "sent_frames")

    def __init__(self) -> None:
        self.sent_bytes = 0
        self.received_bytes = 0
        self.sent_frames = 0
        self.received_frames = 0


#: ``trouper_link_closes_total{reason}``: why a connection ended, in a few
#: words (the full text, with its addresses and errors, is in the log).
CLOSE_REASONS = (
    "closed",
    "replaced",
    "goodbye",
    "left",
    "down",
    "connection_lost",
    "protocol_error",
    "transport_error",
    "other",
)


def close_label(closing: str | None, error: BaseException | None) -> str:
    """The bounded label for why a connection ended."""
    from .. import _errors as errors

    if closing is None:
        if error is None:
            return "closed"
        if isinstance(error, errors.ConnectionLost):
            return "connection_lost"
        if isinstance(error, errors.RemoteProtocolError):
            return "protocol_error"
        return "transport_error"
    if closing == "replaced":
        return "replaced"
    if closing == "left the cluster":
        return "left"
    if closing.startswith("no heartbeat"):
        return "down"
    if isinstance(error, errors.RemoteProtocolError):
        return "protocol_error"
    return "goodbye" if closing else "other"
