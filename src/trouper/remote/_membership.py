"""Membership: which nodes are up, what they are called, and their names.

The protocol is deliberately simple: every node connects to every node it
hears of (a full mesh learned through seeds and gossip; the node with the
smaller id dials), sends a heartbeat per ``heartbeat_interval`` on each link,
and judges each peer with a phi-accrual failure detector. A peer judged down
is down for good *in that incarnation*: its watches fire ``node-down``, its
names vanish, and a node that comes back comes back as a new incarnation.

Only silence counts against a peer: while this node deliberately does not
read from it (its own backpressure, or ``rate_limit``), the peer is treated
as heard, so a busy node never declares a healthy one down.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from .. import _errors as errors
from ..protocols import Credit, Gossip, Heartbeat, Member, RegistryUpdate
from ._peer import Peer
from ._wire import wire_ref

if TYPE_CHECKING:
    from ..runtime import ActorRef, Node
    from ._config import RemoteConfig
    from ._groups import GroupTable

log = logging.getLogger("trouper.remote")


class Membership:
    """The membership half of ``Remoting`` (a mixin: it shares its state)."""

    node: Node
    config: RemoteConfig
    peers: dict[str, Peer]
    cluster: ActorRef | None
    groups: GroupTable

    def resolve(self, node_id: str, path: str, uid: int) -> ActorRef:
        raise NotImplementedError  # in Remoting

    def registry_snapshot(self) -> RegistryUpdate:
        raise NotImplementedError  # in Remoting

    def gossip_members(self) -> list[Member]:
        raise NotImplementedError  # in Remoting

    def __init__(self) -> None:
        self._changed = trio.Event()
        #: Nodes met through gossip that a link of ours is dialling.
        self.linked: set[str] = set()

    # ------------------------------------------------------------ peers

    def admit(self, node_id: str, incarnation: int) -> None:
        """``HandshakeFailed`` if this node would refuse that node (that
        incarnation of it); changes nothing. The acceptor asks before it
        proves itself, so a refused node hears why in the handshake and never
        takes this node for a member it lost."""
        peer = self.peers.get(node_id)
        if peer is not None:
            if peer.incarnation == incarnation and peer.status == "down":
                raise errors.HandshakeFailed(
                    f"node {node_id} incarnation {incarnation} was declared down"
                )
            if incarnation < peer.incarnation:
                raise errors.HandshakeFailed(f"node {node_id} reconnected with a stale incarnation")
        elif len(self.peers) >= self.config.max_peers and all(
            p.status != "down" for p in self.peers.values()
        ):
            raise errors.HandshakeFailed(
                f"node {self.node.id} knows {self.config.max_peers} nodes already (max_peers)"
            )

    def peer_for(self, node_id: str, incarnation: int) -> Peer:
        self.admit(node_id, incarnation)
        peer = self.peers.get(node_id)
        if peer is not None:
            if peer.incarnation == incarnation:
                return peer
            peer.down("restarted with a new incarnation")
        elif len(self.peers) >= self.config.max_peers:
            self._forget_a_down_peer()
        peer = self.peers[node_id] = Peer(self, node_id, incarnation)  # type: ignore[arg-type]
        return peer

    def _forget_a_down_peer(self) -> None:
        for node_id, peer in self.peers.items():
            if peer.status == "down":
                del self.peers[node_id]
                return

    def on_peer_up(self, peer: Peer) -> None:
        peer.send_quiet(self.registry_snapshot())
        peer.send_quiet(Gossip(self.gossip_members()))
        for update in self.groups.snapshot():
            peer.send_quiet(update)
        self.changed()

    def on_peer_down(self, peer: Peer) -> None:
        lost = peer.names
        peer.names = {}
        self.groups.drop(peer.node_id)
        if lost:
            log.info("names of node %s vanished: %s", peer.node_id, sorted(lost)[:20])
        self.changed()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    # ------------------------------------------------------------ tick

    def tick(self) -> None:
        """Heartbeats, failure detection, slow consumers, leftover credit and
        gossip: once per heartbeat interval."""
        config = self.config
        now = trio.current_time()
        for peer in list(self.peers.values()):
            if peer.status == "down":
                continue
            if peer.paused:
                # Our own backpressure: the peer is not silent, we are deaf.
                peer.last_heard = now
                peer.detector.heartbeat(now)
            silent = now - peer.last_heard
            # Bytes still arriving (a big frame whose heartbeat queues behind
            # it) are a sign of life too: phi alone only sees heartbeats.
            suspect = silent > config.heartbeat_interval
            if suspect and peer.detector.phi(now) > config.phi_threshold:
                peer.down(f"no heartbeat for {silent:.1f}s (phi)")
                continue
            if silent > config.down_after:
                peer.down(f"no heartbeat for {silent:.1f}s")
                continue
            conn = peer.conn
            if conn is None:
                continue
            outbox = peer.outbox
            stalled = outbox.stalled_for(now)
            if conn.goodbye_sent:
                continue  # closing; the Goodbye's own deadline ends it
            if outbox.overflowing or stalled > config.slow_consumer_timeout:
                peer.slow_consumer(
                    f"{outbox.bytes} bytes queued"
                    if outbox.overflowing
                    else f"nothing read for {stalled:.1f}s"
                )
                continue
            seq = next(peer.heartbeats)
            peer.send_quiet(Heartbeat(seq, now), urgent=True)
            for target, n in peer.ledger.flush():
                peer.send_quiet(Credit(target, n), urgent=True)
            if seq % config.gossip_every == 0:
                peer.send_quiet(Gossip(self.gossip_members()))

    # ------------------------------------------------------------ gossip

    def merge_gossip(self, sender: Peer, members: list[Member]) -> None:
        from ._actors import Dial

        for member in members[: self.config.max_peers]:
            if member.node == sender.node_id and member.incarnation == sender.incarnation:
                sender.addresses = _addresses(member.addresses)
                continue
            urls = _addresses(member.addresses)
            if member.node == self.node.id or member.status != "up" or not urls:
                continue
            known = self.peers.get(member.node)
            # A node connected right now is what it is, whatever a gossip
            # claims (a peer may lie about its incarnation): a link made for
            # it would only wait for that connection to end, for ever.
            if known is not None and (
                known.incarnation >= member.incarnation or known.conn is not None
            ):
                continue
            # A node we have not met: dial it, once. The one with the smaller
            # id dials, so that a pair does not usually race (the tie-break
            # in Connection handles it when they do).
            if self.node.id < member.node and member.node not in self.linked:
                if len(self.peers) + len(self.linked) >= self.config.max_peers:
                    return
                if self.cluster is None:
                    return
                try:
                    self.cluster.tell_nowait(Dial(urls[0], member.node, member.incarnation))
                except errors.TrouperError:
                    return  # busy: the next gossip offers it again
                self.linked.add(member.node)

    # ---------------------------------------------------------- registry

    def registry_update(self, peer: Peer, env: RegistryUpdate) -> None:
        if env.node != peer.node_id:
            from ._inbound import bad_message

            bad_message(peer, f"registry update for node {env.node!r}")
            return
        if env.snapshot:
            peer.names = {}
        for name in env.removed:
            peer.names.pop(name, None)
        limit = self.config.max_names
        for name, ref in env.added.items():
            if ref.node != peer.node_id:
                continue  # a node announces only its own actors
            if name not in peer.names and len(peer.names) >= limit:
                from ._inbound import bad_message

                bad_message(peer, f"more than {limit} names (max_names): {name!r} ignored")
                continue
            peer.names[name] = self.resolve(ref.node, ref.path, ref.uid)
            self.node.kernel.names.wake(name)

    def name_changed(self, name: str, ref: ActorRef, added: bool) -> None:
        entry = {name: wire_ref(ref)}
        update = RegistryUpdate(self.node.id, entry if added else {}, {} if added else entry)
        for peer in self.peers.values():
            if peer.status == "up":
                peer.send_quiet(update)

    def group_changed(self, group: str, ref: ActorRef, joined: bool) -> None:
        update = self.groups.changed(group, ref, joined)
        for peer in self.peers.values():
            if peer.status == "up":
                peer.send_quiet(update)

    def group_members(self, group: str) -> list[ActorRef]:
        return self.groups.members(group)

    def group_names(self) -> set[str]:
        return self.groups.names()

    def lookup(self, name: str) -> ActorRef | None:
        found = [p.names[name] for p in self.peers.values() if name in p.names]
        return min(found, key=lambda r: r.node_id) if found else None

    def names(self) -> dict[str, ActorRef]:
        out: dict[str, ActorRef] = {}
        for peer in sorted(self.peers.values(), key=lambda p: p.node_id, reverse=True):
            out.update(peer.names)
        return out


def _addresses(urls: list[str]) -> list[str]:
    """What a peer says its addresses are, bounded before this node keeps
    them and gossips them on: 16 at most, each at most 512 characters."""
    return [url for url in urls[:16] if len(url) <= 512]
