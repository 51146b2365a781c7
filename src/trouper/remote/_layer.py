"""``Remoting``: a node's remote layer, the runtime's ``RemoteLayer``.

It keeps one ``Peer`` per other node and turns operations on remote refs
into envelopes for them. Its tasks all run in supervised system actors under
``/system/remote``: a listener per address, a link per dialled address, one
per accepted connection, the cluster ticker and the agent that does what
peers ask (spawns, stops). Nothing runs bare in a node's root nursery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .. import _errors as errors
from ..protocols import (
    Ask,
    Envelope,
    FrameEncoder,
    Goodbye,
    Member,
    RegistryUpdate,
    Reply,
    Spawn,
    Stop,
    StreamEnd,
    StreamItem,
    Tell,
)
from ..runtime import ActorRef, Channel, MemberInfo, StreamReader, current_sender
from ..transports import get_transport, parse_address
from ._allow import AllowList
from ._conn import Connection
from ._events import EventBridge
from ._groups import GroupTable
from ._membership import Membership
from ._peer import Peer
from ._requests import Requests
from ._stats import PeerStatistics, close_label, statistics
from ._tls import RemoteTLS, credentials
from ._wire import failure, make_codec, wire_ref

if TYPE_CHECKING:
    from ..runtime import Cell, Node
    from ._config import RemoteConfig
    from ._spawn_node import NodeHandle

log = logging.getLogger("trouper.remote")

#: Room in a frame beyond a message's own bytes (the envelope, its refs).
_ENVELOPE_ROOM = 1024


class Remoting(Membership, Requests, RemoteTLS):
    def __init__(self, node: Node, config: RemoteConfig) -> None:
        super().__init__()
        self.node = node
        self.config = config
        self.tls = credentials(config.tls)
        self.incarnation = time.time_ns()
        self.codec = make_codec(self.resolve)
        self.peers: dict[str, Peer] = {}
        self.addresses: list[str] = []
        self.allow = AllowList(config.allow_spawn)
        self.handshaking = 0
        self.bad_messages = 0
        #: Connections ended, by ``close_label`` (for the metrics).
        self.link_closes: dict[str, int] = {}
        self.children: list[NodeHandle] = []
        self.groups = GroupTable(node, config, self.resolve)
        self.cluster: ActorRef | None = None
        self.agent: ActorRef | None = None
        self._encoder = msgspec.msgpack.Encoder(enc_hook=self.codec_hook)
        self.events = EventBridge(self)

    # ------------------------------------------------------------- life

    async def start(self) -> None:
        from ._actors import Agent, ClusterActor, Link, Listener

        kernel = self.node.kernel
        for url in self.config.seeds:
            get_transport(parse_address(url).scheme)  # a bad seed fails here, at once
        if self.tls is not None:
            # Read now, so bad files fail open_node. On the loop, as the
            # transports always read a config (once, before any traffic):
            # reloads, which happen while the node serves, use a thread.
            self.tls.material  # noqa: B018
        for url in self.config.listen:
            bound = await Listener.open(self, url)
            self.addresses.append(bound)
        self.node.addresses = tuple(self.addresses)
        self.cluster = await kernel.spawn_system("remote", ClusterActor, self, segment="cluster")
        self.agent = await kernel.spawn_system("remote", Agent, self, segment="agent")
        for url in self.config.seeds:
            if url not in self.addresses:
                await kernel.spawn_system("remote", Link, self, url, True, None)

    async def connect(self, url: str) -> str:
        """Dial ``url`` now and keep the link (redialled on loss); returns the
        id of the node there, or raises why the first attempt failed."""
        from ._actors import Link, _Started

        first = _Started()
        ref = await self.node.kernel.spawn_system("remote", Link, self, url, True, first)
        try:
            await first.event.wait()
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.node.stop(ref)
            raise
        if first.error is not None:
            raise first.error
        assert first.url is not None
        return first.url

    async def close(self) -> None:
        """Stop child node processes, then say goodbye to every peer, so they
        see us leave instead of dying."""
        for handle in self.children:
            await handle.stop()
        leaving = [p for p in self.peers.values() if p.status == "up" and p.conn is not None]
        for peer in leaving:
            assert peer.conn is not None
            peer.conn.goodbye("node shutting down", "shutdown")
        with trio.move_on_after(0.5):
            for peer in leaving:
                await peer.outbox.wait_drained()

    def abort(self) -> None:
        for handle in self.children:
            handle.kill()

    # ------------------------------------------------------------ refs

    def resolve(self, node_id: str, path: str, uid: int) -> ActorRef:
        if node_id == self.node.id:
            cell = self.node.kernel.cell_at(path, uid)
            if cell is not None:
                return cell.ref
        return ActorRef(node_id, path, uid, None, self)

    def codec_hook(self, obj: Any) -> Any:
        if isinstance(obj, ActorRef):
            return (obj.node_id, obj.path, obj.uid)
        raise NotImplementedError(f"cannot encode {type(obj).__name__} values")

    def encode(
        self, msg: Any, what: str = "message", peer: Peer | None = None
    ) -> tuple[str, msgspec.Raw]:
        """A message's type name and payload; ``FrameTooLarge`` (ours, at the
        sender, before anything is queued) if it cannot fit a frame: of this
        node's ``max_frame_size``, or of the smaller one ``peer`` accepts."""
        name, payload = self.codec.encode_payload(msg)
        frame = self.config.max_frame_size if peer is None else peer.max_frame
        if len(payload) > frame - _ENVELOPE_ROOM:
            raise errors.FrameTooLarge(
                f"a {name} {what} of {len(payload)} bytes cannot be sent: the frame limit "
                f"is {frame} bytes (max_frame_size); send large data in pieces, e.g. as "
                "a stream"
            )
        return name, msgspec.Raw(payload)

    def peer_of(self, node_id: str) -> Peer:
        peer = self.peers.get(node_id)
        if peer is None:
            raise errors.NodeDown(f"node {node_id} is not connected to {self.node.id}")
        if peer.status == "down":
            raise errors.NodeDown(f"node {node_id} is down")
        return peer

    def _own(self, ref: ActorRef) -> bool:
        """A ref to this very node that names no live actor (decoded from a
        message, or kept from before the actor stopped)."""
        return ref.node_id == self.node.id

    async def tell(self, ref: ActorRef, msg: Any) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._own(ref):
            self.node.dead_letters.record(msg, current_sender(), ref, "no such actor")
            return
        try:
            peer = self.peer_of(ref.node_id)
        except errors.NodeDown:
            self.node.dead_letters.record(msg, current_sender(), ref, "node down")
            return
        name, payload = self.encode(msg, peer=peer)
        target = wire_ref(ref)
        sender = current_sender()
        try:
            if peer.outbox.full:
                await peer.wait_for_space()
            await peer.take_credit(target)
        except errors.NodeDown:
            self.node.dead_letters.record(msg, sender, ref, "node down")
            return
        peer.outbox.push(Tell(target, name, payload, None if sender is None else wire_ref(sender)))

    def tell_nowait(self, ref: ActorRef, msg: Any) -> None:
        if self._own(ref):
            self.node.dead_letters.record(msg, current_sender(), ref, "no such actor")
            return
        try:
            peer = self.peer_of(ref.node_id)
        except errors.NodeDown:
            self.node.dead_letters.record(msg, current_sender(), ref, "node down")
            return
        name, payload = self.encode(msg, peer=peer)
        target = wire_ref(ref)
        if peer.outbox.full:
            raise errors.MailboxFull(f"the link to node {ref.node_id} is saturated")
        if not peer.credits.try_take(target):
            raise errors.MailboxFull(
                f"{ref.path} on node {ref.node_id} has {self.config.tell_window} tells in flight"
            )
        sender = current_sender()
        peer.outbox.push(Tell(target, name, payload, None if sender is None else wire_ref(sender)))

    async def ask(self, ref: ActorRef, msg: Any, timeout: float | None) -> Any:
        if self._own(ref):
            await trio.lowlevel.checkpoint()
            raise errors.ActorDead(f"{ref.path} is dead")
        peer = self.peer_of(ref.node_id)
        name, payload = self.encode(msg, peer=peer)
        target = wire_ref(ref)
        sender = current_sender()
        source = None if sender is None else wire_ref(sender)
        if timeout is None:
            return await peer.ask(lambda i: Ask(i, target, name, payload, source, None))
        timers = self.node.kernel.timers
        if len(peer.asks) < self.config.max_pending_asks and not peer.outbox.full:
            # The hot path: the deadline is an entry in the node's timer
            # queue (as for a local ask), not a cancel scope.
            return await peer.ask(
                lambda i: Ask(i, target, name, payload, source, timeout),
                lambda reply: timers.ask_timeout(timeout, reply, ref, msg),
            )
        with trio.move_on_after(timeout):  # waiting for a slot counts against it
            return await peer.ask(lambda i: Ask(i, target, name, payload, source, timeout))
        timers.ask_timeouts += 1
        raise errors.AskTimeout(ref._timeout_text(msg, timeout))

    def open_stream(
        self, ref: ActorRef, msg: Any, window: int
    ) -> AbstractAsyncContextManager[StreamReader]:
        return self._open_stream(ref, msg, window)

    @asynccontextmanager
    async def _open_stream(
        self, ref: ActorRef, msg: Any, window: int
    ) -> AsyncIterator[StreamReader]:
        from ._streams import open_remote_stream

        if self._own(ref):
            await trio.lowlevel.checkpoint()
            raise errors.ActorDead(f"{ref.path} is dead")
        async with open_remote_stream(self.peer_of(ref.node_id), ref, msg, window) as reader:
            yield reader

    def open_channel(
        self, ref: ActorRef, msg: Any, window: int
    ) -> AbstractAsyncContextManager[Channel[Any, Any]]:
        return self._open_channel(ref, msg, window)

    @asynccontextmanager
    async def _open_channel(
        self, ref: ActorRef, msg: Any, window: int
    ) -> AsyncIterator[Channel[Any, Any]]:
        from ._channels import open_remote_channel

        if self._own(ref):
            await trio.lowlevel.checkpoint()
            raise errors.ActorDead(f"{ref.path} is dead")
        async with open_remote_channel(self.peer_of(ref.node_id), ref, msg, window) as channel:
            yield channel

    def watch(self, watcher: Cell, ref: ActorRef) -> None:
        peer = self.peers.get(ref.node_id)
        if self._own(ref):
            watcher.watched_stopped(ref, "no such actor")
        elif peer is None or peer.status == "down":
            watcher.watched_stopped(ref, "node-down")
        else:
            peer.watch(watcher, ref)

    def unwatch(self, watcher: Cell, ref: ActorRef) -> None:
        peer = self.peers.get(ref.node_id)
        if peer is not None:
            peer.unwatch(watcher, ref)

    # --------------------------------------------------- connections

    async def accept(self, stream: trio.abc.Stream) -> None:
        """Serve a stream some other server accepted (the web gateway's peers
        path), as a listener of this node would; returns when it ends."""
        from ._actors import accept

        await accept(self, stream)

    def advertise(self, url: str) -> None:
        """List ``url`` among this node's addresses (gossiped to the cluster)."""
        if url not in self.addresses:
            self.addresses.append(url)
            self.node.addresses = tuple(self.addresses)

    def withdraw(self, url: str) -> None:
        if url in self.addresses:
            self.addresses.remove(url)
            self.node.addresses = tuple(self.addresses)

    async def serve(
        self,
        stream: trio.abc.Stream,
        established: tuple[Any, Any, list[Envelope]],
        *,
        initiator: str,
    ) -> None:
        """Serve an authenticated stream until it ends."""
        proto, decoder, leftover = established
        assert proto.peer_id is not None and proto.peer_incarnation is not None
        try:
            peer = self.peer_for(proto.peer_id, proto.peer_incarnation)
        except errors.HandshakeFailed as exc:
            log.warning("node %s: %s", self.node.id, exc)
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            return
        ours = self.config.max_frame_size
        conn = Connection(stream, proto, decoder, initiator, ours, proto.peer_max_frame or ours)
        if not peer.attach(conn):
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            return  # a simultaneous connection won the tie-break
        try:
            await conn.run(peer, leftover)
        finally:
            why = conn.closing or ("closed" if conn.error is None else str(conn.error))
            label = close_label(conn.closing, conn.error)
            self.link_closes[label] = self.link_closes.get(label, 0) + 1
            peer.detach(conn, why)

    def goodbye_received(self, peer: Peer, env: Goodbye) -> None:
        if env.code == "shutdown":
            peer.down("left the cluster")
        else:
            log.info("node %s closed its link to %s: %s", peer.node_id, self.node.id, env.reason)

    async def open_lane(self, peer: Peer) -> tuple[trio.abc.SendStream, FrameEncoder] | None:
        conn = peer.conn
        return None if conn is None else await conn.open_lane()

    def unsendable(self, peer: Peer, env: Envelope, exc: errors.TrouperError) -> None:
        """The writer could not pack ``env`` (too large, or our encoder
        refused it): fail that one message, say so, and carry on."""
        log.warning("node %s: not sent to %s: %s", self.node.id, peer.node_id, exc)
        if isinstance(env, Tell):
            self.node.dead_letters.record(env.type_name, None, env.target, str(exc))
        elif isinstance(env, Reply):
            peer.send_quiet(failure(env.id, exc, self.node.id, "", tracebacks=False))
        elif isinstance(env, StreamItem):
            producer = peer.producers.pop(env.id, None)
            if producer is not None:
                producer.cancel()
                peer.send_quiet(StreamEnd(env.id, producer.detail(exc)))
        elif isinstance(env, Ask | Spawn | Stop):
            reply = peer.asks.pop(env.id, None)
            if reply is not None:
                reply.fail(exc)

    # ----------------------------------------------------- node processes

    async def spawn_node(
        self, *, name: str | None, allow_spawn: Sequence[str], listen: str, timeout: float
    ) -> NodeHandle:
        from ._spawn_node import start_node_process

        handle = await start_node_process(
            self, name=name, allow_spawn=allow_spawn, listen=listen, timeout=timeout
        )
        self.children.append(handle)
        return handle

    # ----------------------------------------------------- members (RemoteLayer)

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

    def statistics(self) -> dict[str, PeerStatistics]:
        """A snapshot per known node of what it holds here (``PeerStatistics``)."""
        return {node_id: statistics(peer) for node_id, peer in self.peers.items()}

    def registry_snapshot(self) -> RegistryUpdate:
        names = {name: wire_ref(ref) for name, ref in self.node.kernel.names.items()}
        return RegistryUpdate(self.node.id, names, {}, snapshot=True)
