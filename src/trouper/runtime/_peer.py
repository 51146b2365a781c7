"""One other node, as this node sees it, and the connection that reaches it.

A ``Peer`` outlives connections: pending asks, streams, watches and the
outbox belong to it, so a reconnect (the link actor redials with backoff)
does not lose who watches what. A connection is two tasks over one transport
stream: a reader that decodes frames and dispatches envelopes, and a writer
that takes the whole outbox per write (one frame per batch: a busy link
batches by itself, an idle one sends at once).

Bad input (garbage, a truncated or oversize frame, an unknown type, an
envelope out of order) raises ``ProtocolError`` in the reader, which closes
that one connection, logged; nothing else is affected.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .. import _errors as errors
from ..protocols import (
    Ask,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Gossip,
    Heartbeat,
    PhiAccrualDetector,
    RegistryUpdate,
    Reply,
    Spawn,
    SpawnResult,
    StreamCancel,
    StreamCredit,
    StreamEnd,
    StreamItem,
    StreamOpen,
    Tell,
    Terminated,
    TokenBucket,
    Unwatch,
    Watch,
)
from ..protocols import Connection as ProtoConnection
from ..protocols._envelopes import Envelope
from ..transports import LaneStream
from ._ref import ActorRef, _put
from ._states import DEAD
from ._streams import Producer, RemoteStream, open_producer
from ._wire import failure, unbox, wire_ref

if TYPE_CHECKING:
    from ._cell import Cell
    from ._remote import Remoting

log = logging.getLogger("trouper.remote")


class RemoteReply:
    """The reply slot of an ``Ask`` that came over the wire."""

    __slots__ = ("id", "path", "peer")

    def __init__(self, peer: Peer, id: int, path: str) -> None:
        self.peer = peer
        self.id = id
        self.path = path

    def set(self, value: Any) -> None:
        try:
            name, payload = self.peer.remoting.codec.encode_payload(value)
        except errors.TrouperError as exc:
            self.fail(exc)
            return
        self.peer.send_quiet(Reply(self.id, name, msgspec.Raw(payload)))

    def fail(self, exc: BaseException) -> None:
        node = self.peer.remoting.node.id
        self.peer.send_quiet(failure(self.id, exc, node, self.path))


class RemoteWatcher:
    """Stands in a local cell's watcher set for the actors of one peer that
    watch it; one per (peer, cell), counting the peer's watches."""

    __slots__ = ("cell", "count", "peer")

    def __init__(self, peer: Peer, cell: Cell) -> None:
        self.peer = peer
        self.cell = cell
        self.count = 0

    def _watched_stopped(self, ref: ActorRef, reason: str) -> None:
        self.peer.watched.pop(self.cell, None)
        self.peer.send_quiet(Terminated(wire_ref(ref), reason))


class Conn:
    """One live transport stream to a peer."""

    __slots__ = (
        "buffer",
        "decoder",
        "encoder",
        "goodbye_sent",
        "initiator",
        "lanes",
        "peer",
        "proto",
        "scope",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        proto: ProtoConnection,
        decoder: FrameDecoder,
        initiator: str,
        max_frame: int,
    ) -> None:
        self.stream = stream
        self.proto = proto
        self.decoder = decoder
        self.buffer = bytearray()
        self.initiator = initiator
        self.encoder = FrameEncoder(max_frame)
        self.scope = trio.CancelScope()
        self.peer: Peer | None = None
        # Bulk stream() items travel on lanes of their own where the
        # transport has independent streams (QUIC), see _streams._forward.
        self.lanes = isinstance(stream, LaneStream)
        self.goodbye_sent = False

    @property
    def preferred(self) -> bool:
        """Of two simultaneous connections between a pair, both sides keep the
        one dialled by the node with the smaller id."""
        assert self.proto.peer_id is not None
        acceptor = (
            self.proto.node_id if self.initiator != self.proto.node_id else self.proto.peer_id
        )
        return self.initiator < acceptor


class Peer:
    """Everything this node knows about one other node."""

    def __init__(self, remoting: Remoting, node_id: str, incarnation: int) -> None:
        config = remoting.config
        self.remoting = remoting
        self.node_id = node_id
        self.incarnation = incarnation
        self.addresses: list[str] = []
        self.status = "joining"
        self.conn: Conn | None = None
        self.outbox: list[Envelope] = []
        self.wakeup = trio.Event()
        self.writing = False
        self.throttled = False
        self.drained = trio.Event()  # set while the outbox is empty
        self.drained.set()
        self.asks: dict[int, Any] = {}
        self.ids = itertools.count(1)
        self.streams: dict[int, RemoteStream] = {}
        self.producers: dict[int, Producer] = {}
        self.watching: dict[ActorRef, set[Cell]] = {}
        self.watched: dict[Cell, RemoteWatcher] = {}
        self.names: dict[str, ActorRef] = {}
        self.detector = PhiAccrualDetector(
            threshold=config.phi_threshold,
            min_std=config.heartbeat_interval / 4,
            acceptable_pause=config.acceptable_pause,
            first_interval=config.heartbeat_interval,
        )
        self.last_heard = trio.current_time()
        self.ask_slots = trio.Semaphore(config.max_pending_asks)
        self.heartbeats = itertools.count(1)
        self.disconnected = trio.Event()
        self.disconnected.set()

    def __repr__(self) -> str:
        return f"<Peer {self.node_id}#{self.incarnation} {self.status}>"

    # ------------------------------------------------------------- sending

    def send(self, env: Envelope, wake: bool = True) -> None:
        """Queue ``env`` for the writer; ``NodeDown`` if the peer is down.

        ``wake=False`` is for a caller that writes the outbox itself next
        (``write_now``), so the writer task is not woken for nothing.
        """
        if self.status == "down":
            raise errors.NodeDown(f"node {self.node_id} is down")
        if not self.outbox:
            if wake or self.writing:
                self.wakeup.set()
            self.drained = trio.Event()
        self.outbox.append(env)

    def send_quiet(self, env: Envelope) -> None:
        """Send if the peer is still there; an answer to a dead node is moot."""
        if self.status != "down":
            self.send(env)

    # ------------------------------------------------------------ life

    def attach(self, conn: Conn) -> bool:
        """Make ``conn`` the live connection; False if it loses a tie-break."""
        if self.conn is not None and not (conn.preferred and not self.conn.preferred):
            return False
        if self.conn is not None:
            self.conn.scope.cancel()
        conn.peer = self
        self.conn = conn
        self.status = "up"
        self.disconnected = trio.Event()
        self.last_heard = trio.current_time()
        self.detector.heartbeat(self.last_heard)
        self.remoting.on_peer_up(self)
        for ref, cells in self.watching.items():
            if cells:  # re-arm: a Terminated may have been lost with the old link
                self.send_quiet(Watch(wire_ref(next(iter(cells)).ref), wire_ref(ref)))
        return True

    def detach(self, conn: Conn, why: str) -> None:
        if self.conn is not conn:
            return
        self.conn = None
        self.outbox.clear()
        self.drained.set()
        self.disconnected.set()
        self.fail_in_flight(errors.NodeDown(f"connection to node {self.node_id} lost: {why}"))

    def fail_in_flight(self, exc: errors.TrouperError) -> None:
        asks, self.asks = self.asks, {}
        for reply in asks.values():
            reply.fail(exc)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.end(exc)
        producers, self.producers = self.producers, {}
        for producer in producers.values():
            producer.scope.cancel()

    def down(self, reason: str) -> None:
        """Declared down: every watch fires ``node-down``, names vanish."""
        if self.status == "down":
            return
        level = logging.INFO if reason == "left the cluster" else logging.WARNING
        log.log(level, "node %s (%s) is down: %s", self.node_id, self.incarnation, reason)
        if self.conn is not None:
            self.conn.scope.cancel()
            self.detach(self.conn, reason)
        self.status = "down"
        self.fail_in_flight(errors.NodeDown(f"node {self.node_id} is down: {reason}"))
        watching, self.watching = self.watching, {}
        for ref, cells in watching.items():
            for cell in cells:
                cell._watched_stopped(ref, "node-down")
        watched, self.watched = self.watched, {}
        for cell, watcher in watched.items():
            if cell._watchers is not None:
                cell._watchers.discard(watcher)
        self.remoting.on_peer_down(self)

    # ------------------------------------------------------------ the I/O

    async def run(self, conn: Conn, leftover: list[Envelope]) -> None:
        """Serve ``conn`` until it breaks, is replaced or the peer goes down."""
        error: BaseException | None = None
        try:
            with conn.scope:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._writer, conn)
                        if conn.lanes:
                            nursery.start_soon(self._accept_lanes, conn, nursery)
                        try:
                            for env in leftover:
                                await self.dispatch(env)
                            await self._reader(conn)
                        except errors.ProtocolError as exc:
                            await self._goodbye_first(conn, exc)
                            raise
                        nursery.cancel_scope.cancel()
                except* errors.ProtocolError as group:
                    error = group.exceptions[0]
                except* errors.TransportError as group:
                    error = group.exceptions[0]
            if isinstance(error, errors.ProtocolError):
                log.error("protocol error from node %s: %s; closing that link", self.node_id, error)
                if not conn.goodbye_sent:
                    with trio.move_on_after(1, shield=True):
                        await _say_goodbye(conn, str(error), error.error_code)
        finally:
            self.detach(conn, "closed" if error is None else str(error))
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(conn.stream)

    async def _goodbye_first(self, conn: Conn, exc: errors.ProtocolError) -> None:
        """Queue a Goodbye saying why, and let the writer send it (1 s at
        most) before the link is torn down: cancelling the writer in the
        middle of a write breaks a TLS stream for good, Goodbye included."""
        conn.goodbye_sent = True
        try:
            goodbye = conn.proto.close(str(exc)[:200], exc.error_code)
        except errors.TrouperError:
            return
        if not self.outbox:
            self.drained = trio.Event()
        self.outbox.append(goodbye)
        self.wakeup.set()
        with trio.move_on_after(1):
            await self.drained.wait()

    async def _writer(self, conn: Conn) -> None:
        while True:
            if not self.outbox or self.writing:
                if not self.outbox:
                    self.drained.set()
                self.wakeup = trio.Event()
                await self.wakeup.wait()
                continue
            await self._write_all(conn)

    async def write_now(self) -> None:
        """Write the outbox from the calling task, if no write is under way.

        An asker is about to sleep anyway; writing its ``Ask`` itself saves the
        switch to the writer task, a good part of a loopback round trip.
        """
        conn = self.conn
        if conn is None or self.writing or not self.outbox:
            return
        try:
            await self._write_all(conn)
        except errors.ConnectionLost:
            conn.scope.cancel()  # the connection's own tasks notice and detach

    async def _write_all(self, conn: Conn) -> None:
        """Send until the outbox is empty: one frame per 512 envelopes, one
        ``send_all`` per batch. Only one task writes at a time."""
        self.writing = True
        try:
            buffer = conn.buffer
            while self.outbox:
                batch, self.outbox = self.outbox, []
                buffer.clear()
                for start in range(0, len(batch), 512):
                    conn.encoder.encode_into(batch[start : start + 512], buffer)
                try:
                    await conn.stream.send_all(buffer)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    raise errors.ConnectionLost(f"writing to {self.node_id}: {exc}") from exc
        finally:
            self.writing = False

    async def _reader(self, conn: Conn) -> None:
        config = self.remoting.config
        decoder = conn.decoder
        rate = config.rate_limit
        bucket = TokenBucket(rate, max(1.0, rate)) if rate else None
        stream = conn.stream
        proto = conn.proto
        while True:
            envelopes = await self._receive(stream, decoder, "")
            if envelopes is None:
                raise errors.ConnectionLost(f"node {self.node_id} closed the connection")
            if not envelopes:
                continue
            if bucket is not None:
                await self._throttle(bucket, len(envelopes))
            for env in envelopes:
                proto.receive(env)
                if type(env) is Tell and self._tell_now(env):
                    continue  # the hot path: no coroutine per message
                await self.dispatch(env)
                if type(env) is Goodbye:
                    return

    async def open_lane(self) -> tuple[trio.abc.SendStream, FrameEncoder] | None:
        """A one-way lane beside the live connection, if its transport has
        them (None: send on the connection itself)."""
        conn = self.conn
        if conn is None or not conn.lanes:
            return None
        stream: Any = conn.stream
        try:
            lane = await stream.open_lane()
        except (errors.TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        return lane, FrameEncoder(self.remoting.config.max_frame_size)

    async def _accept_lanes(self, conn: Conn, nursery: trio.Nursery) -> None:
        stream: Any = conn.stream
        while True:
            try:
                lane = await stream.accept_lane()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise errors.ConnectionLost(f"lanes from {self.node_id}: {exc}") from exc
            nursery.start_soon(self._lane_reader, conn, lane)

    async def _lane_reader(self, conn: Conn, lane: trio.abc.ReceiveStream) -> None:
        try:
            await self._read_lane(lane)
        except errors.ProtocolError as exc:
            await self._goodbye_first(conn, exc)
            raise

    async def _read_lane(self, lane: trio.abc.ReceiveStream) -> None:
        """Stream items and ends of one bulk transfer; anything else on a
        lane is a protocol error (it would bypass the main stream's order)."""
        decoder = FrameDecoder(self.remoting.config.max_frame_size)
        async with lane:
            while (envelopes := await self._receive(lane, decoder, " on a lane")) is not None:
                for env in envelopes:
                    if type(env) is not StreamItem and type(env) is not StreamEnd:
                        raise errors.ProtocolError(
                            f"{type(env).__name__} from {self.node_id} on a stream lane"
                        )
                    await self.dispatch(env)

    async def _receive(
        self, stream: trio.abc.ReceiveStream, decoder: FrameDecoder, where: str
    ) -> list[Envelope] | None:
        """The envelopes of one read (maybe none yet), or None at a clean end.

        Any bytes count as a sign of life (see Remoting.tick); an end in the
        middle of a frame is a ``ProtocolError``, a broken stream ``ConnectionLost``.
        """
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise errors.ConnectionLost(f"reading{where} from {self.node_id}: {exc}") from exc
        if not data:
            if decoder.pending:
                raise errors.ProtocolError(f"truncated frame{where} from {self.node_id}")
            return None
        self.last_heard = trio.current_time()
        return decoder.feed(data)

    async def _throttle(self, bucket: TokenBucket, count: int) -> None:
        """Hold the reader until ``count`` envelopes fit the rate limit, so TCP
        slows the peer down. The peer is not silent meanwhile (we are not
        listening), so the failure detector does not count this pause."""
        while count > 0:
            chunk = min(count, int(bucket.burst))
            delay = bucket.delay_until_available(trio.current_time(), chunk)
            if delay > 0:
                self.throttled = True
                try:
                    await trio.sleep(delay)
                finally:
                    self.throttled = False
            bucket.try_take(trio.current_time(), chunk)
            count -= chunk

    # ------------------------------------------------------------ inbound

    async def dispatch(self, env: Envelope) -> None:
        handler = _DISPATCH.get(type(env))
        if handler is None:
            raise errors.ProtocolError(f"{type(env).__name__} is not expected on a live link")
        await handler(self, env)

    def _target(self, target: Any) -> Cell | None:
        return self.remoting.local_cell(target.node, target.path, target.uid)

    def _decode(self, type_name: str, payload: msgspec.Raw) -> Any:
        return self.remoting.codec.decode_payload(type_name, payload)

    def _sender(self, sender: Any) -> ActorRef | None:
        if sender is None:
            return None
        return self.remoting.resolve(sender.node, sender.path, sender.uid)

    def _tell_now(self, env: Tell) -> bool:
        """Deliver a Tell without waiting, if its target has mailbox space."""
        cell = self._target(env.target)
        if cell is None:
            return False
        mailbox = cell._mailbox
        if mailbox is not None and (len(mailbox) >= cell._mailbox_size or cell._waiters):
            return False
        msg = self._decode(env.type_name, env.payload)
        sender = env.sender
        cell._enqueue((msg, None if sender is None else self._sender(sender), None))
        return True

    async def _on_tell(self, env: Tell) -> None:
        cell = self._target(env.target)
        if cell is None:
            # Not decoded: this node may not even know the type (a ref from
            # before a restart), and nobody will handle it anyway.
            self.remoting.node._dead_letters.record(env.type_name, None, env.target, "dead")
            return
        msg = self._decode(env.type_name, env.payload)
        await _put(cell, (msg, self._sender(env.sender), None))

    async def _on_ask(self, env: Ask) -> None:
        cell = self._target(env.target)
        reply = RemoteReply(self, env.id, env.target.path)
        if cell is None:
            reply.fail(errors.ActorDead(f"{env.target.path} is dead"))
            return
        msg = self._decode(env.type_name, env.payload)
        await _put(cell, (msg, self._sender(env.sender), reply))

    async def _on_reply(self, env: Reply) -> None:
        reply = self.asks.pop(env.id, None)
        if reply is not None:
            reply.set(self._decode(env.type_name, env.payload))

    async def _on_failure(self, env: Failure) -> None:
        reply = self.asks.pop(env.id, None)
        if reply is not None:
            reply.fail(unbox(env))

    async def _on_spawn_result(self, env: SpawnResult) -> None:
        reply = self.asks.pop(env.id, None)
        if reply is not None:
            reply.set(self.remoting.resolve(env.ref.node, env.ref.path, env.ref.uid))

    async def _on_watch(self, env: Watch) -> None:
        cell = self._target(env.target)
        if cell is None or cell._state == DEAD:
            reason = cell._reason if cell is not None else "no such actor"
            self.send_quiet(Terminated(env.target, reason))
            return
        watcher = self.watched.get(cell)
        if watcher is None:
            watcher = self.watched[cell] = RemoteWatcher(self, cell)
            if cell._watchers is None:
                cell._watchers = set()
            cell._watchers.add(watcher)
        watcher.count += 1

    async def _on_unwatch(self, env: Unwatch) -> None:
        cell = self._target(env.target)
        watcher = None if cell is None else self.watched.get(cell)
        if cell is None or watcher is None:
            return
        watcher.count -= 1
        if watcher.count <= 0:
            del self.watched[cell]
            if cell._watchers is not None:
                cell._watchers.discard(watcher)

    async def _on_terminated(self, env: Terminated) -> None:
        ref = self.remoting.resolve(env.target.node, env.target.path, env.target.uid)
        for cell in self.watching.pop(ref, ()):
            cell._watched_stopped(ref, env.reason)

    async def _on_stream_open(self, env: StreamOpen) -> None:
        cell = self._target(env.target)
        msg = None if cell is None else self._decode(env.type_name, env.payload)
        await open_producer(self, env, cell, msg, self._sender(env.sender))

    async def _on_stream_item(self, env: StreamItem) -> None:
        stream = self.streams.get(env.id)
        value = self._decode(env.type_name, env.payload)
        if stream is not None:
            stream.item(value)

    async def _on_stream_end(self, env: StreamEnd) -> None:
        stream = self.streams.pop(env.id, None)
        if stream is not None:
            stream.end(None if env.error is None else unbox(env.error))

    async def _on_stream_credit(self, env: StreamCredit) -> None:
        producer = self.producers.get(env.id)
        if producer is not None:
            producer.grant(env.n)

    async def _on_stream_cancel(self, env: StreamCancel) -> None:
        producer = self.producers.pop(env.id, None)
        if producer is not None:
            producer.scope.cancel()

    async def _on_spawn(self, env: Spawn) -> None:
        self.remoting.spawn_requested(self, env)

    async def _on_heartbeat(self, env: Heartbeat) -> None:
        self.detector.heartbeat(trio.current_time())

    async def _on_gossip(self, env: Gossip) -> None:
        self.remoting.merge_gossip(self, env.members)

    async def _on_registry(self, env: RegistryUpdate) -> None:
        self.remoting.registry_update(self, env)

    async def _on_goodbye(self, env: Goodbye) -> None:
        if env.code == "shutdown":
            self.down("left the cluster")


async def _say_goodbye(conn: Conn, reason: str, code: str) -> None:
    try:
        goodbye = conn.proto.close(reason[:200], code)
        await conn.stream.send_all(conn.encoder.encode([goodbye]))
    except (errors.TrouperError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


_DISPATCH: dict[type, Any] = {
    Tell: Peer._on_tell,
    Ask: Peer._on_ask,
    Reply: Peer._on_reply,
    Failure: Peer._on_failure,
    SpawnResult: Peer._on_spawn_result,
    Watch: Peer._on_watch,
    Unwatch: Peer._on_unwatch,
    Terminated: Peer._on_terminated,
    StreamOpen: Peer._on_stream_open,
    StreamItem: Peer._on_stream_item,
    StreamEnd: Peer._on_stream_end,
    StreamCredit: Peer._on_stream_credit,
    StreamCancel: Peer._on_stream_cancel,
    Spawn: Peer._on_spawn,
    Heartbeat: Peer._on_heartbeat,
    Gossip: Peer._on_gossip,
    RegistryUpdate: Peer._on_registry,
    Goodbye: Peer._on_goodbye,
}
