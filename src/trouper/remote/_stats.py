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
    ``outbox_hard_factor``), ``streams_in`` by ``max_streams``, ``watched_by``
    by ``max_watches``, ``names`` by ``max_names``, ``requests`` by
    ``max_peer_requests``, ``group_members`` by ``max_group_members``.
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


def statistics(peer: Peer) -> PeerStatistics:
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
    )
