"""Remoting: listeners, peers, remote refs, the cluster registry, membership.

The runtime never imports a transport: it asks the transport registry by URL
scheme. The membership protocol is deliberately simple: every node connects to
every node it hears of (full mesh, learned through seeds and gossip), sends a
heartbeat per ``heartbeat_interval`` on each link, and judges each peer with a
phi-accrual failure detector. A peer it judges down is down for good *in that
incarnation*: its watches fire ``node-down``, its names vanish, and a node
that comes back must come back with a new incarnation.
"""

from __future__ import annotations

import fnmatch
import importlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import msgspec
import trio
import trio.lowlevel

from .. import _errors as errors
from ..protocols import (
    AcceptorConnection,
    Ask,
    FrameDecoder,
    FrameEncoder,
    Gossip,
    Heartbeat,
    InitiatorConnection,
    Member,
    RegistryUpdate,
    Spawn,
    SpawnResult,
    Tell,
    Unwatch,
    Watch,
)
from ..protocols import Connection as ProtoConnection
from ..protocols._envelopes import Envelope
from ..transports import TLSConfig, get_transport, parse_address
from ._peer import Conn, Peer
from ._ref import ActorRef, Reply, current_sender
from ._states import DEAD
from ._wire import failure, make_codec, wire_ref

if TYPE_CHECKING:
    from ._cell import Cell
    from ._node import Node

log = logging.getLogger("trouper.remote")


_SpawnArgs = tuple[list[Any], dict[str, Any]]


@attrs.frozen
class RemoteConfig:
    """The network settings of a node (``open_node`` keyword arguments)."""

    cookie: bytes
    listen: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    tls: TLSConfig | None = None
    allow_spawn: tuple[str, ...] = ()
    max_frame_size: int = 16 * 1024 * 1024
    max_pending_asks: int = 10_000
    max_outbox: int = 10_000
    rate_limit: float | None = None
    heartbeat_interval: float = 0.5
    acceptable_pause: float = 2.0
    phi_threshold: float = 8.0
    down_after: float = 4.5
    handshake_timeout: float = 10.0
    gossip_every: int = 4


@attrs.frozen
class MemberInfo:
    """One node of the cluster, as ``node.members()`` reports it."""

    node_id: str
    incarnation: int
    addresses: tuple[str, ...]
    status: str


class Remoting:
    def __init__(self, node: Node, config: RemoteConfig) -> None:
        self.node = node
        self.config = config
        self.incarnation = time.time_ns()
        self.codec = make_codec(self)
        self.peers: dict[str, Peer] = {}
        self.addresses: list[str] = []
        self.changed = trio.Event()
        #: Nodes met through gossip that a Link of ours is dialling.
        self.linked: set[str] = set()

    # ------------------------------------------------------------- startup

    async def start(self) -> None:
        node = self.node
        for url in self.config.listen:
            address = parse_address(url)
            transport = get_transport(address.scheme)
            bound = await node._nursery.start(
                self._serve, transport, address, name=f"trouper {node.id} listener {url}"
            )
            self.addresses.append(bound)
        node.addresses = tuple(self.addresses)
        from ._links import ClusterActor, Link

        await node._system_spawn(ClusterActor, "cluster", self)
        for url in self.config.seeds:
            if url not in self.addresses:
                await node._system_spawn(Link, None, self, url, True, None)

    async def _serve(self, transport: Any, address: Any, task_status: Any) -> None:
        await transport.serve(address, self.accept, tls=self.config.tls, task_status=task_status)

    async def connect(self, url: str) -> str:
        """Dial ``url`` now, handshake, and keep the link (redialled on loss)."""
        from ._links import Link

        stream = await self.dial(url)
        try:
            proto, decoder, leftover = await self.handshake(stream, initiator=True)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            raise
        assert proto.peer_id is not None
        await self.node._system_spawn(
            Link, None, self, url, True, (stream, proto, decoder, leftover)
        )
        return proto.peer_id

    async def dial(self, url: str) -> trio.abc.Stream:
        address = parse_address(url)
        transport = get_transport(address.scheme)
        # A connection's background tasks (QUIC's receive loop) live in the
        # node's nursery, so they end with the node at the latest.
        return await transport.connect(address, tls=self.config.tls, nursery=self.node._nursery)

    async def close(self) -> None:
        """Say goodbye to every peer, so they see us leave instead of dying."""
        leaving = [p for p in self.peers.values() if p.status == "up" and p.conn is not None]
        for peer in leaving:
            assert peer.conn is not None
            peer.send(peer.conn.proto.close("node shutting down", "shutdown"))
        with trio.move_on_after(0.5):
            for peer in leaving:
                await peer.drained.wait()

    # ------------------------------------------------------- connections

    async def accept(self, stream: trio.abc.Stream) -> None:
        try:
            proto, decoder, leftover = await self.handshake(stream, initiator=False)
        except errors.TransportError as exc:
            log.warning("node %s refused a connection: %s", self.node.id, exc)
            return
        from ._links import Inbound

        done = trio.Event()
        await self.node._system_spawn(Inbound, None, self, (stream, proto, decoder, leftover), done)
        await done.wait()

    async def handshake(
        self, stream: trio.abc.Stream, *, initiator: bool, expected: str | None = None
    ) -> tuple[ProtoConnection, FrameDecoder, list[Envelope]]:
        config = self.config
        common: dict[str, Any] = {
            "node_id": self.node.id,
            "incarnation": self.incarnation,
            "cookie": config.cookie,
            "nonce": os.urandom(16),
        }
        proto: ProtoConnection = (
            InitiatorConnection(**common, expected_peer_id=expected)
            if initiator
            else AcceptorConnection(**common)
        )
        encoder = FrameEncoder(config.max_frame_size)
        decoder = FrameDecoder(config.max_frame_size)
        leftover: list[Envelope] = []
        try:
            with trio.fail_after(config.handshake_timeout):
                first = proto.start()
                if first:
                    await stream.send_all(encoder.encode(first))
                while not proto.established:
                    data = await stream.receive_some(65536)
                    if not data:
                        raise errors.HandshakeFailed("the peer hung up during the handshake")
                    for env in decoder.feed(data):
                        if proto.established:
                            leftover.append(env)
                            continue
                        replies = proto.receive(env)
                        if replies:
                            await stream.send_all(encoder.encode(replies))
        except trio.TooSlowError:
            raise errors.HandshakeFailed(
                f"no handshake within {config.handshake_timeout}s"
            ) from None
        except errors.HandshakeFailed as exc:
            with trio.move_on_after(1, shield=True):
                try:
                    goodbye = proto.close(str(exc)[:200], exc.error_code)
                    await stream.send_all(encoder.encode([goodbye]))
                except (errors.TrouperError, trio.BrokenResourceError, OSError):
                    pass
            raise
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise errors.HandshakeFailed(f"the link broke during the handshake: {exc}") from exc
        return proto, decoder, leftover

    async def serve(
        self,
        stream: trio.abc.Stream,
        proto: ProtoConnection,
        decoder: FrameDecoder,
        leftover: list[Envelope],
        *,
        initiator: str,
    ) -> None:
        assert proto.peer_id is not None and proto.peer_incarnation is not None
        try:
            peer = self.peer_for(proto.peer_id, proto.peer_incarnation)
        except errors.HandshakeFailed as exc:
            log.warning("node %s: %s", self.node.id, exc)
            return
        conn = Conn(stream, proto, decoder, initiator, self.config.max_frame_size)
        if not peer.attach(conn):
            return  # a simultaneous connection won the tie-break
        await peer.run(conn, leftover)

    def peer_for(self, node_id: str, incarnation: int) -> Peer:
        peer = self.peers.get(node_id)
        if peer is not None:
            if peer.incarnation == incarnation:
                if peer.status == "down":
                    raise errors.HandshakeFailed(
                        f"node {node_id} incarnation {incarnation} was declared down"
                    )
                return peer
            if incarnation < peer.incarnation:
                raise errors.HandshakeFailed(f"node {node_id} reconnected with a stale incarnation")
            peer.down("restarted with a new incarnation")
        peer = self.peers[node_id] = Peer(self, node_id, incarnation)
        return peer

    def on_peer_up(self, peer: Peer) -> None:
        names = {name: wire_ref(cell.ref) for name, cell in self.node._names.items()}
        peer.send(RegistryUpdate(self.node.id, names, {}, snapshot=True))
        peer.send(Gossip(self.gossip_members()))
        self._changed()

    def on_peer_down(self, peer: Peer) -> None:
        lost = peer.names
        peer.names = {}
        if lost:
            log.info("names of node %s vanished: %s", peer.node_id, sorted(lost))
        self._changed()

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    # ----------------------------------------------------------- refs

    def resolve(self, node_id: str, path: str, uid: int) -> ActorRef:
        if node_id == self.node.id:
            cell = self.node._paths.get(path)
            if cell is not None and cell.ref.uid == uid:
                return cell.ref
            return ActorRef(node_id, path, uid, None, None)
        return ActorRef(node_id, path, uid, None, self)

    def local_cell(self, node_id: str, path: str, uid: int) -> Cell | None:
        if node_id != self.node.id:
            return None
        cell = self.node._paths.get(path)
        if cell is None or cell.ref.uid != uid or cell._state == DEAD:
            return None
        return cell

    def peer_of(self, node_id: str) -> Peer:
        peer = self.peers.get(node_id)
        if peer is None:
            raise errors.NodeDown(f"node {node_id} is not connected to {self.node.id}")
        if peer.status == "down":
            raise errors.NodeDown(f"node {node_id} is down")
        return peer

    def _encode(self, msg: Any) -> tuple[str, msgspec.Raw]:
        name, payload = self.codec.encode_payload(msg)
        if len(payload) > self.config.max_frame_size - 1024:
            raise errors.FrameTooLarge(
                f"a {name} of {len(payload)} bytes exceeds the frame limit "
                f"({self.config.max_frame_size})"
            )
        return name, msgspec.Raw(payload)

    def post(self, ref: ActorRef, msg: Any, *, wait: bool) -> bool:
        """Queue a ``Tell``; True if the link's outbox is over its bound."""
        try:
            peer = self.peer_of(ref.node_id)
        except errors.NodeDown:
            self.node._dead_letters.record(msg, current_sender(), ref, "node down")
            return False
        saturated = len(peer.outbox) >= self.config.max_outbox
        if saturated and not wait:
            raise errors.MailboxFull(f"the link to node {ref.node_id} is saturated")
        name, payload = self._encode(msg)
        sender = current_sender()
        peer.send(Tell(wire_ref(ref), name, payload, None if sender is None else wire_ref(sender)))
        return saturated

    async def tell(self, ref: ActorRef, msg: Any) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.post(ref, msg, wait=True):
            peer = self.peers[ref.node_id]
            # Backpressure: the writer takes the whole outbox per write.
            while len(peer.outbox) >= self.config.max_outbox and peer.conn is not None:
                await trio.lowlevel.checkpoint()

    async def ask(self, ref: ActorRef, msg: Any, timeout: float | None) -> Any:
        peer = self.peer_of(ref.node_id)
        name, payload = self._encode(msg)
        sender = current_sender()
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            async with peer.ask_slots:
                return await self._exchange(
                    peer,
                    lambda ask_id: Ask(
                        ask_id,
                        wire_ref(ref),
                        name,
                        payload,
                        None if sender is None else wire_ref(sender),
                        timeout,
                    ),
                )
        raise errors.AskTimeout(ref._timeout_text(msg, timeout))

    async def _exchange(self, peer: Peer, request: Callable[[int], Envelope]) -> Any:
        """Send ``request(id)`` and wait for the ``Reply``, ``Failure`` or
        ``SpawnResult`` with that id (the caller bounds the wait)."""
        reply = Reply(trio.lowlevel.current_task())
        request_id = next(peer.ids)
        peer.asks[request_id] = reply
        try:
            peer.send(request(request_id), wake=False)
            # The caller is about to sleep anyway: writing from its task saves
            # the switch to the writer task, a good part of a loopback round trip.
            await peer.write_now()
            if peer.outbox and not peer.writing:
                peer.wakeup.set()  # not connected yet: the writer sends it
            return await reply.wait()
        finally:
            peer.asks.pop(request_id, None)

    def watch(self, cell: Cell, ref: ActorRef) -> None:
        peer = self.peers.get(ref.node_id)
        if peer is None or peer.status == "down":
            cell._watched_stopped(ref, "node-down")
            return
        cells = peer.watching.setdefault(ref, set())
        if not cells:
            peer.send(Watch(wire_ref(cell.ref), wire_ref(ref)))
        cells.add(cell)

    def unwatch(self, cell: Cell, ref: ActorRef) -> None:
        peer = self.peers.get(ref.node_id)
        if peer is None:
            return
        cells = peer.watching.get(ref)
        if cells is None:
            return
        cells.discard(cell)
        if not cells:
            del peer.watching[ref]
            peer.send_quiet(Unwatch(wire_ref(cell.ref), wire_ref(ref)))

    # ----------------------------------------------------------- spawn

    async def spawn(
        self,
        node_id: str,
        cls: type,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox_size: int | None,
        timeout: float,
    ) -> ActorRef:
        peer = self.peer_of(node_id)
        class_path = f"{cls.__module__}:{cls.__qualname__}"
        encoded = msgspec.Raw(self.codec._encoder.encode([list(args), kwargs]))
        with trio.move_on_after(timeout):
            ref: ActorRef = await self._exchange(
                peer,
                lambda spawn_id: Spawn(spawn_id, class_path, encoded, name, mailbox_size),
            )
            return ref
        raise errors.AskTimeout(f"node {node_id} did not answer a spawn of {class_path}")

    def spawn_requested(self, peer: Peer, env: Spawn) -> None:
        self.node._nursery.start_soon(self._spawn_for, peer, env)

    async def _spawn_for(self, peer: Peer, env: Spawn) -> None:
        from ..actors._actor import Actor

        node = self.node
        try:
            if not any(fnmatch.fnmatchcase(env.class_path, p) for p in self.config.allow_spawn):
                raise errors.SpawnRefused(
                    f"node {node.id} does not allow spawning {env.class_path} "
                    "(see allow_spawn / --allow-spawn)"
                )
            # Only now, for a class the operator allowed, is any module imported.
            module_name, _, qualname = env.class_path.partition(":")
            try:
                target: Any = importlib.import_module(module_name)
                for part in qualname.split("."):
                    target = getattr(target, part)
            except (ImportError, AttributeError) as exc:
                raise errors.SpawnRefused(f"cannot import {env.class_path}: {exc}") from exc
            if not (isinstance(target, type) and issubclass(target, Actor)):
                raise errors.SpawnRefused(f"{env.class_path} is not an Actor class")
            try:
                args, kwargs = msgspec.msgpack.decode(
                    env.args, type=tuple[list[Any], dict[str, Any]]
                )
            except msgspec.DecodeError as exc:
                raise errors.SpawnRefused(f"bad spawn arguments: {exc}") from exc
            ref = await node.spawn(
                target, *args, name=env.name, mailbox_size=env.mailbox_size, **kwargs
            )
        except errors.TrouperError as exc:
            peer.send_quiet(failure(env.id, exc, node.id, "/user"))
            return
        peer.send_quiet(SpawnResult(env.id, wire_ref(ref)))

    # ------------------------------------------------------ membership

    def members(self) -> list[MemberInfo]:
        me = MemberInfo(self.node.id, self.incarnation, tuple(self.addresses), "up")
        others = [
            MemberInfo(p.node_id, p.incarnation, tuple(p.addresses), p.status)
            for p in self.peers.values()
        ]
        return [me, *sorted(others, key=lambda m: m.node_id)]

    def gossip_members(self) -> list[Member]:
        me = Member(self.node.id, self.incarnation, list(self.addresses), "up", 0)
        return [me] + [
            Member(p.node_id, p.incarnation, list(p.addresses), p.status, 0)
            for p in self.peers.values()
            if p.status == "up"
        ]

    def merge_gossip(self, sender: Peer, members: list[Member]) -> None:
        from ._links import Link

        for member in members:
            if member.node == sender.node_id and member.incarnation == sender.incarnation:
                sender.addresses = list(member.addresses)
                continue
            if member.node == self.node.id or member.status != "up" or not member.addresses:
                continue
            known = self.peers.get(member.node)
            if known is not None and known.incarnation >= member.incarnation:
                continue
            # A node we have not met: dial it, once. The one with the smaller
            # id dials, so that a pair does not usually race (the tie-break
            # in Conn handles it when they do).
            if self.node.id < member.node and member.node not in self.linked:
                self.linked.add(member.node)
                self.node._nursery.start_soon(
                    self.node._system_spawn,
                    Link,
                    None,
                    self,
                    member.addresses[0],
                    False,
                    None,
                    member.node,
                )

    def tick(self) -> None:
        """Heartbeats, failure detection, gossip: once per heartbeat interval."""
        now = trio.current_time()
        for peer in list(self.peers.values()):
            if peer.status == "down":
                continue
            if peer.throttled:
                peer.last_heard = now
                peer.detector.heartbeat(now)
            silent = now - peer.last_heard
            # Bytes still arriving (a big frame whose heartbeat queues behind
            # it) are a sign of life too: phi alone only sees heartbeats.
            suspect = silent > self.config.heartbeat_interval
            if suspect and peer.detector.phi(now) > self.config.phi_threshold:
                peer.down(f"no heartbeat for {silent:.1f}s (phi)")
            elif silent > self.config.down_after:
                peer.down(f"no heartbeat for {silent:.1f}s")
            elif peer.conn is not None:
                seq = next(peer.heartbeats)
                peer.send_quiet(Heartbeat(seq, now))
                if seq % self.config.gossip_every == 0:
                    peer.send_quiet(Gossip(self.gossip_members()))

    # -------------------------------------------------------- registry

    def registry_update(self, peer: Peer, env: RegistryUpdate) -> None:
        if env.snapshot:
            peer.names = {}
        for name in env.removed:
            peer.names.pop(name, None)
        for name, ref in env.added.items():
            peer.names[name] = self.resolve(ref.node, ref.path, ref.uid)
            self.node._wake_name(name)

    def name_changed(self, name: str, ref: ActorRef, added: bool) -> None:
        entry = {name: wire_ref(ref)}
        update = RegistryUpdate(self.node.id, entry if added else {}, {} if added else entry)
        for peer in self.peers.values():
            if peer.status == "up":
                peer.send_quiet(update)

    def lookup(self, name: str) -> ActorRef | None:
        found = [p.names[name] for p in self.peers.values() if name in p.names]
        return min(found, key=lambda r: r.node_id) if found else None
