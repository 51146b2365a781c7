"""The remote metrics: traffic per peer, its RTT and phi, members, closes.

Read at scrape time from the peers' plain counts (``remote/_stats.Traffic``)
and the failure detectors. The ``peer`` label is a node id: bounded by
``max_peers`` (docs/remote.md).
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..remote import Remoting
from ..remote._stats import CLOSE_REASONS

if TYPE_CHECKING:
    from ..runtime import Node

#: ``struct tcp_info``: tcpi_rtt (microseconds) is the 16th u32 after 8 bytes.
_TCP_INFO_RTT = struct.Struct("=I")
_TCP_INFO_RTT_OFFSET = 68
_TCP_INFO_SIZE = 104


def tcp_rtt(sock: Any) -> float | None:
    """The kernel's smoothed RTT of a TCP socket, in seconds (Linux only).

    Links carry no echo of their heartbeats, so the kernel's own estimate
    (from every ACK) is the RTT we have, at no cost to the protocol."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if sock is None or tcp_info is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _TCP_INFO_RTT_OFFSET + 4:
        return None
    (micros,) = _TCP_INFO_RTT.unpack_from(info, _TCP_INFO_RTT_OFFSET)
    return float(micros) / 1e6


def remote_families(node: Node) -> Iterator[Metric]:
    remote = node.remote
    members = GaugeMetricFamily(
        "trouper_cluster_members", "Cluster members by status.", labels=["status"]
    )
    counts: dict[str, int] = {}
    for member in node.members():
        counts[member.status] = counts.get(member.status, 0) + 1
    for status in sorted({"up", *counts}):
        members.add_metric([status], counts.get(status, 0))
    yield members
    if not isinstance(remote, Remoting):
        return
    sent = CounterMetricFamily(
        "trouper_peer_sent_bytes", "Bytes written to a peer's links.", labels=["peer"]
    )
    received = CounterMetricFamily(
        "trouper_peer_received_bytes", "Bytes read from a peer's links.", labels=["peer"]
    )
    frames = CounterMetricFamily(
        "trouper_peer_frames",
        "Frames (each a batch of envelopes) to and from a peer.",
        labels=["peer", "direction"],
    )
    rtt = GaugeMetricFamily(
        "trouper_peer_rtt_seconds",
        "Round-trip time to a peer (the kernel's TCP estimate; plain TCP links).",
        labels=["peer"],
    )
    phi = GaugeMetricFamily(
        "trouper_peer_phi", "The phi-accrual suspicion of a peer.", labels=["peer"]
    )
    try:
        now: float | None = trio.current_time()
    except RuntimeError:  # scraped from outside the node's trio run
        now = None
    for node_id, peer in sorted(remote.peers.items()):
        traffic = peer.traffic
        sent.add_metric([node_id], traffic.sent_bytes)
        received.add_metric([node_id], traffic.received_bytes)
        frames.add_metric([node_id, "sent"], traffic.sent_frames)
        frames.add_metric([node_id, "received"], traffic.received_frames)
        conn = peer.conn
        seconds = None if conn is None else tcp_rtt(conn.sock)
        if seconds is not None:
            rtt.add_metric([node_id], seconds)
        value = math.nan if now is None else peer.detector.phi(now)
        if not math.isnan(value):
            phi.add_metric([node_id], min(value, 1e9))
    yield sent
    yield received
    yield frames
    yield rtt
    yield phi
    closes = CounterMetricFamily(
        "trouper_link_closes", "Connections to peers that ended, by reason.", labels=["reason"]
    )
    for reason in CLOSE_REASONS:
        closes.add_metric([reason], remote.link_closes.get(reason, 0))
    yield closes
