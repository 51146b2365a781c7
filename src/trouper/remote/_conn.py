"""``Connection``: one live transport stream to a peer: one reader, one writer.

* The **reader** decodes frames and hands each envelope to ``_inbound``,
  which never waits: a full mailbox, a slow actor or a busy peer cannot stall
  it, so heartbeats and replies are always read. It pauses only to bound
  what the peer makes this node hold (and then the failure detector knows it
  is our own backpressure, not the peer's silence), or under ``rate_limit``.
* The **writer** is the only task that ever writes to the stream. Senders
  queue envelopes in the peer's outbox; the writer packs them into frames no
  larger than ``max_frame_size`` and writes them. No caller's cancellation
  (an ask timing out, a cancelled scope) can interrupt a write, so a frame is
  never cut in half.

Framing garbage from the peer (``RemoteProtocolError``) closes this
connection, after a ``Goodbye`` that says why; nothing else does.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import trio

from .. import _errors as errors
from ..protocols import (
    Challenge,
    Envelope,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Hello,
    StreamEnd,
    StreamItem,
    TokenBucket,
    Welcome,
)
from ..protocols import Connection as ProtoConnection
from ..transports import LaneStream
from ._inbound import bad_message, receive

if TYPE_CHECKING:
    from ._peer import Peer

log = logging.getLogger("trouper.remote")

_PROTOCOL_TYPES = frozenset({Hello, Challenge, Welcome, Goodbye})
#: A write takes at most this much of the outbox at once.
_BATCH_COUNT = 4096
_BATCH_BYTES = 1024 * 1024
_GOODBYE_TIMEOUT = 1.0
#: What one read of a plain TCP link takes at most.
_READ_SIZE = 65536
#: A plain TCP link is read with os.read on its descriptor (see _receive).
_RAW_READ = os.name == "posix"


class Connection:
    """One transport stream to a peer, after the handshake."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        proto: ProtoConnection,
        decoder: FrameDecoder,
        initiator: str,
        max_frame: int,
        peer_max_frame: int,
    ) -> None:
        self.stream = stream
        self.proto = proto
        self.decoder = decoder
        self.initiator = initiator
        # We send frames no larger than the peer accepts, and read ours.
        self.encoder = FrameEncoder(min(max_frame, peer_max_frame))
        self.max_frame_in = max_frame
        self.scope = trio.CancelScope()
        self.peer: Peer | None = None
        self.lanes = isinstance(stream, LaneStream)
        self.closing: str | None = None
        self.goodbye_sent = False
        self.error: BaseException | None = None
        # A plain TCP socket can be written without waiting (see write_now),
        # and read without the stream wrapper (see _receive).
        self.sock: Any = stream.socket if isinstance(stream, trio.SocketStream) else None
        self.fd = -1 if self.sock is None else self.sock.fileno()
        #: The last raw read filled its buffer: more is likely waiting.
        self.read_full = False
        self.writing = False
        self.leftover: bytes | None = None
        self.buffer = bytearray()

    @property
    def preferred(self) -> bool:
        """Of two simultaneous connections between a pair, both sides keep the
        one dialled by the node with the smaller id."""
        assert self.proto.peer_id is not None
        acceptor = (
            self.proto.node_id if self.initiator != self.proto.node_id else self.proto.peer_id
        )
        return self.initiator < acceptor

    def close_soon(self, why: str) -> None:
        """End this connection (from any task, without waiting)."""
        if self.closing is None:
            self.closing = why
        self.scope.cancel()

    def goodbye(self, reason: str, code: str) -> None:
        """Queue a Goodbye, after everything queued before it (a leaving node's
        last messages, its actors' Terminated), and end the connection once it
        is written, or after a second: it says why we hang up."""
        peer = self.peer
        if peer is None or self.goodbye_sent:
            self.close_soon(reason)
            return
        self.goodbye_sent = True
        try:
            env = self.proto.close(reason[:200], code)
        except errors.TrouperError:
            self.close_soon(reason)
            return
        peer.outbox.push(env)
        self.closing = reason
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + _GOODBYE_TIMEOUT)

    # ------------------------------------------------------------ run

    async def run(self, peer: Peer, leftover: list[Envelope]) -> None:
        """Serve until the stream ends, the peer says goodbye, or we close it."""
        self.peer = peer
        try:
            with self.scope:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._writer, peer)
                        if self.lanes:
                            nursery.start_soon(self._accept_lanes, peer, nursery)
                        await self._read_until_done(peer, leftover)
                        nursery.cancel_scope.cancel()
                except* errors.TransportError as group:
                    self.error = group.exceptions[0]
        finally:
            self.fd = -1  # closed below: its number may soon name another socket
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _read_until_done(self, peer: Peer, leftover: list[Envelope]) -> None:
        try:
            if self._dispatch(peer, leftover):
                await self._reader(peer)
        except errors.RemoteProtocolError as exc:
            log.error("protocol error from node %s: %s; closing that link", peer.node_id, exc)
            self.error = exc
            self.goodbye(str(exc), exc.error_code)
            await trio.sleep_forever()  # until the writer has sent the Goodbye

    def _dispatch(self, peer: Peer, envelopes: list[Envelope]) -> bool:
        """Hand envelopes to ``_inbound``; False once the peer said goodbye."""
        for env in envelopes:
            if type(env) in _PROTOCOL_TYPES:
                self.proto.receive(env)  # RemoteProtocolError for a handshake envelope
                if type(env) is Goodbye:
                    assert isinstance(env, Goodbye)
                    peer.remoting.goodbye_received(peer, env)
                    return False
            else:
                receive(peer, env)
        return True

    async def _reader(self, peer: Peer) -> None:
        config = peer.config
        rate = config.rate_limit
        bucket = TokenBucket(rate, max(1.0, rate)) if rate else None
        stream = self.stream
        decoder = self.decoder
        while True:
            if peer.must_pause():
                await self._pause(peer)
                continue
            envelopes = await self._receive(peer, stream, decoder, "")
            if envelopes is None:
                raise errors.ConnectionLost(f"node {peer.node_id} closed the connection")
            if not envelopes:
                continue
            if bucket is not None:
                await self._throttle(peer, bucket, len(envelopes))
            if not self._dispatch(peer, envelopes):
                return

    async def _pause(self, peer: Peer) -> None:
        """Stop reading until what the peer made us hold drains (our own
        backpressure: the failure detector does not count this time)."""
        peer.paused = True
        peer.resume = trio.Event()
        if not peer.must_pause():
            peer.paused = False
            return
        try:
            await peer.resume.wait()
        finally:
            peer.paused = False
            peer.last_heard = trio.current_time()

    async def _receive(
        self, peer: Peer, stream: trio.abc.ReceiveStream, decoder: FrameDecoder, where: str
    ) -> list[Envelope] | None:
        """The envelopes of one read (maybe none yet), or None at a clean end.

        Any bytes count as a sign of life; an end in the middle of a frame is
        a ``RemoteProtocolError``, a broken stream ``ConnectionLost``.
        """
        try:
            fd = self.fd
            if stream is self.stream and fd >= 0 and _RAW_READ:
                # A plain TCP link, read on its descriptor (this reader is its
                # only one; the descriptor stays open until the reader is
                # done, see run). It waits for readability *first*, unless the
                # last read filled its buffer: the socket's own recv tries a
                # read first, which in a request-response exchange fails
                # nearly every time (a syscall and an exception for nothing).
                data: bytes | bytearray = b""
                if self.read_full:
                    await trio.lowlevel.checkpoint()
                    try:
                        data = os.read(fd, _READ_SIZE)
                    except BlockingIOError:
                        data = b""
                    else:
                        if not data:
                            return self._ended(peer, decoder, where)
                while not data:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, _READ_SIZE)
                    except BlockingIOError:
                        continue  # woken for nothing: wait again
                    if not data:
                        return self._ended(peer, decoder, where)
                self.read_full = len(data) == _READ_SIZE
            elif stream is self.stream and fd >= 0:
                # The trio socket itself, without the stream wrapper.
                data = await self.sock.recv(_READ_SIZE)
            else:
                data = await stream.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise errors.ConnectionLost(f"reading{where} from {peer.node_id}: {exc}") from exc
        except errors.TransportError:
            raise
        if not data:
            return self._ended(peer, decoder, where)
        peer.last_heard = trio.current_time()
        traffic = peer.traffic
        traffic.received_bytes += len(data)
        frames = decoder.frames
        envelopes = decoder.feed(data)
        traffic.received_frames += decoder.frames - frames
        return envelopes

    @staticmethod
    def _ended(peer: Peer, decoder: FrameDecoder, where: str) -> None:
        """The stream ended cleanly: None, unless in the middle of a frame."""
        if decoder.pending:
            raise errors.RemoteProtocolError(f"truncated frame{where} from {peer.node_id}")
        return None

    async def _throttle(self, peer: Peer, bucket: TokenBucket, count: int) -> None:
        """Hold the reader until ``count`` envelopes fit the rate limit, so TCP
        slows the peer down. The peer is not silent meanwhile (we are not
        listening), so the failure detector does not count this pause."""
        while count > 0:
            chunk = min(count, int(bucket.burst))
            delay = bucket.delay_until_available(trio.current_time(), chunk)
            if delay > 0:
                peer.paused = True
                try:
                    await trio.sleep(delay)
                finally:
                    peer.paused = False
                    peer.last_heard = trio.current_time()
            bucket.try_take(trio.current_time(), chunk)
            count -= chunk

    def _pack(self, peer: Peer, batch: list[Envelope]) -> bytearray:
        buffer = self.buffer
        buffer.clear()
        frames = self.encoder.frames
        for env, exc in self.encoder.pack(batch, buffer):
            peer.remoting.unsendable(peer, env, exc)
        peer.traffic.sent_frames += self.encoder.frames - frames
        return buffer

    def write_now(self, peer: Peer) -> None:
        """Write what is queued from the caller's task, if this is a plain TCP
        link with no write in progress; otherwise (or for what the socket does
        not take at once) wake the writer.

        The write is a single non-blocking ``os.write``: synchronous, so no
        cancellation can stop it halfway, and it never waits. An idle link
        thus sends an ask or a reply without a switch to the writer task (a
        good part of a loopback round trip); a busy one still batches."""
        outbox = peer.outbox
        if self.fd < 0 or self.writing or self.leftover is not None or self.goodbye_sent:
            outbox.wake()
            return
        batch = outbox.take(_BATCH_COUNT, _BATCH_BYTES)
        if not batch:
            return
        data = self._pack(peer, batch)
        try:
            written = os.write(self.fd, data) if data else 0
        except BlockingIOError:
            written = 0
        except OSError:
            written = 0  # the writer's send_all will report it properly
        peer.traffic.sent_bytes += written
        if written == len(data):
            outbox.wrote()
            if len(outbox):
                outbox.wake()
            return
        self.leftover = bytes(data[written:])
        outbox.wake()

    async def _writer(self, peer: Peer) -> None:
        outbox = peer.outbox
        stream = self.stream
        while True:
            if self.leftover is not None:
                data: bytes | bytearray = self.leftover
                last = False
            else:
                batch = outbox.take(_BATCH_COUNT, _BATCH_BYTES)
                if not batch:
                    await outbox.wait_for_work()
                    continue
                last = self.goodbye_sent and any(type(e) is Goodbye for e in batch)
                data = self._pack(peer, batch)
            self.writing = True
            try:
                if data:
                    await stream.send_all(data)
                    peer.traffic.sent_bytes += len(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise errors.ConnectionLost(f"writing to {peer.node_id}: {exc}") from exc
            finally:
                self.writing = False
                self.leftover = None
                outbox.wrote()
            if last:
                self.scope.cancel()  # the Goodbye is out: hang up
                return

    # ------------------------------------------------------------ lanes

    async def open_lane(self) -> tuple[trio.abc.SendStream, FrameEncoder] | None:
        """A one-way lane beside this connection (None: no lanes here)."""
        if not self.lanes:
            return None
        stream: Any = self.stream
        try:
            lane = await stream.open_lane()
        except (errors.TransportError, trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        return lane, FrameEncoder(self.encoder.max_frame_size)

    async def _accept_lanes(self, peer: Peer, nursery: trio.Nursery) -> None:
        stream: Any = self.stream
        while True:
            try:
                lane = await stream.accept_lane()
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise errors.ConnectionLost(f"lanes from {peer.node_id}: {exc}") from exc
            nursery.start_soon(self._read_lane, peer, lane)

    async def _read_lane(self, peer: Peer, lane: trio.abc.ReceiveStream) -> None:
        """Stream items and ends of one bulk transfer. Anything else on a lane,
        or garbage, closes that lane alone and ends its stream."""
        from ._streams import _end_consumer

        decoder = FrameDecoder(self.max_frame_in)
        stream_id: int | None = None
        try:
            async with lane:
                while (
                    envelopes := await self._receive(peer, lane, decoder, " on a lane")
                ) is not None:
                    for env in envelopes:
                        if type(env) is not StreamItem and type(env) is not StreamEnd:
                            raise errors.RemoteProtocolError(
                                f"{type(env).__name__} from {peer.node_id} on a stream lane"
                            )
                        stream_id = env.id
                        receive(peer, env)
        except (errors.RemoteProtocolError, errors.ConnectionLost) as exc:
            bad_message(peer, f"stream lane: {exc}")
            if stream_id is not None:
                _end_consumer(peer, stream_id, exc)
