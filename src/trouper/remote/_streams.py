"""Streams across nodes, with credit-based flow control end to end.

The consumer grants ``window`` credits in ``StreamOpen`` and more as its
application takes items (``CreditGranter``: half a window at a time). On the
producer's node the actor's generator runs in its own nursery (the runtime's
``pump``) into a ``RemoteSink``, which sends an item only while it holds a
credit: at most ``window`` items are ever in flight or buffered, however slow
the consumer. On QUIC each stream gets a lane of its own, so a bulk transfer
never holds up asks and heartbeats.

Whatever goes wrong with one stream (an item that does not decode, a producer
overrunning its credit, a broken lane) ends that stream alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from .. import _errors as errors
from ..protocols import (
    CreditGranter,
    CreditWindow,
    FrameEncoder,
    StreamCancel,
    StreamCredit,
    StreamEnd,
    StreamItem,
    StreamOpen,
)
from ..runtime import ConsumerGone, StreamReader, StreamSink, current_sender
from ._traced import traceparent
from ._wire import error_detail, unbox, wire_ref

if TYPE_CHECKING:
    from ..runtime import ActorRef
    from ._peer import Peer

# Closing a lane only sends its FIN; this bounds it if the link is stuck.
_LANE_CLOSE_TIMEOUT = 5.0
_END: Any = object()


# ------------------------------------------------------------- consumer


class RemoteStream:
    """The consumer's side of a stream whose producer is on a peer."""

    __slots__ = ("granter", "id", "peer", "recv", "send")

    def __init__(self, peer: Peer, id: int, window: int) -> None:
        self.peer = peer
        self.id = id
        # One slot beyond the window for the end marker.
        self.send, self.recv = trio.open_memory_channel[Any](window + 1)
        self.granter = CreditGranter(window)

    def item(self, value: Any) -> None:
        self.granter.on_item()  # RemoteProtocolError if the producer overran its credit
        try:
            self.send.send_nowait(value)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the consumer left; its StreamCancel is on the way

    def end(self, exc: BaseException | None) -> None:
        from ..runtime._streams import STREAM_END, StreamFailed

        try:
            self.send.send_nowait(STREAM_END if exc is None else StreamFailed(exc))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.send.close()

    def consumed(self) -> None:
        credit = self.granter.on_processed(1)
        if credit:
            self.peer.send_quiet(StreamCredit(self.id, credit), urgent=True)


class RemoteStreamReader(StreamReader):
    """A ``StreamReader`` that grants credit back as items are taken."""

    __slots__ = ("_stream",)

    def __init__(self, stream: RemoteStream, ref: ActorRef) -> None:
        super().__init__(stream.recv, ref)
        self._stream = stream

    def _received(self, item: Any) -> Any:
        self._stream.consumed()
        return item


@asynccontextmanager
async def open_remote_stream(
    peer: Peer, ref: ActorRef, msg: Any, window: int
) -> AsyncIterator[StreamReader]:
    remoting = peer.remoting
    name, payload = remoting.encode(msg, peer=peer)
    await peer.wait_for_space()
    stream_id = next(peer.ids)
    stream = RemoteStream(peer, stream_id, window)
    sender = current_sender()
    peer.streams[stream_id] = stream
    peer.send(
        StreamOpen(
            stream_id,
            wire_ref(ref),
            name,
            payload,
            window,
            None if sender is None else wire_ref(sender),
            traceparent(remoting),
        )
    )
    try:
        yield RemoteStreamReader(stream, ref)
    finally:
        stream.recv.close()
        if peer.streams.pop(stream_id, None) is not None:
            peer.send_quiet(StreamCancel(stream_id, "consumer left"))


def _end_consumer(peer: Peer, id: int, exc: BaseException) -> None:
    stream = peer.streams.pop(id, None)
    if stream is not None:
        stream.end(exc)
        peer.send_quiet(StreamCancel(id, str(exc)[:200]))


def on_stream_item(peer: Peer, env: StreamItem) -> None:
    from ._inbound import decode

    stream = peer.streams.get(env.id)
    if stream is None:
        return  # the consumer left; items were still in flight
    try:
        stream.item(decode(peer, env.type_name, env.payload))
    except (errors.UnhandledMessage, errors.RemoteProtocolError) as exc:
        _end_consumer(peer, env.id, exc)


def on_stream_end(peer: Peer, env: StreamEnd) -> None:
    stream = peer.streams.pop(env.id, None)
    if stream is not None:
        stream.end(None if env.error is None else unbox(env.error))


# ------------------------------------------------------------- producer


class RemoteSink(StreamSink):
    """Where an actor's stream items go for a consumer on ``peer``."""

    __slots__ = ("cancelled", "credit", "event", "id", "lane", "path", "peer", "scope", "trace")

    def __init__(self, peer: Peer, id: int, credit: int, path: str) -> None:
        self.peer = peer
        self.id = id
        self.path = path
        self.credit = CreditWindow(credit)
        self.event = trio.Event()
        self.cancelled = False
        self.lane: tuple[trio.abc.SendStream, FrameEncoder] | bool | None = False
        self.scope: trio.CancelScope | None = None

    def grant(self, n: int) -> None:
        self.credit.grant(n)
        self.event.set()

    def attach(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        if self.cancelled:
            scope.cancel()

    async def release(self) -> None:
        if self.peer.producers.get(self.id) is self:
            del self.peer.producers[self.id]
        lane = self.lane
        self.lane = None
        if isinstance(lane, tuple):
            with trio.move_on_after(_LANE_CLOSE_TIMEOUT):
                await lane[0].aclose()

    def cancel(self) -> None:
        """The consumer left (or its node did): the producer stops now, even
        if its generator is waiting for something other than credit, so a
        peer opening and cancelling streams cannot pile up producer tasks."""
        self.cancelled = True
        self.event.set()
        if self.scope is not None:
            self.scope.cancel()

    def detail(self, exc: BaseException) -> Any:
        remoting = self.peer.remoting
        return error_detail(
            exc, remoting.node.id, self.path, tracebacks=remoting.config.remote_tracebacks
        )

    async def send(self, value: Any) -> None:
        while not self.credit.can_send and not self.cancelled:
            self.event = trio.Event()
            await self.event.wait()
        if self.cancelled or self.peer.status == "down":
            raise ConsumerGone
        try:
            name, payload = self.peer.remoting.encode(value, what="stream item", peer=self.peer)
        except errors.TrouperError as exc:
            await self.end(exc)  # the consumer hears why; the actor carries on
            raise ConsumerGone from None
        self.credit.consume()
        if not await self._put(StreamItem(self.id, name, payload)):
            raise ConsumerGone

    async def _put(self, env: Any) -> bool:
        peer = self.peer
        if self.lane is False:
            self.lane = await peer.remoting.open_lane(peer)
        lane = self.lane
        if isinstance(lane, tuple):
            stream, encoder = lane
            try:
                await stream.send_all(encoder.encode([env]))
            except (trio.BrokenResourceError, trio.ClosedResourceError, errors.TrouperError):
                self.cancelled = True
                return False
            return True
        try:
            await peer.wait_for_space()
            peer.send(env)
        except errors.NodeDown:
            self.cancelled = True
            return False
        return True

    async def end(self, exc: BaseException | None) -> None:
        if self.peer.producers.get(self.id) is self:
            del self.peer.producers[self.id]
        if not self.cancelled:
            self.cancelled = True
            detail = None if exc is None else self.detail(exc)
            await self._put(StreamEnd(self.id, detail))
        # (the lane, if any, is closed by ``release``, whatever happened)

    def set(self, value: Any) -> None:
        # A plain handler reached through stream(): one item, then the end.
        peer = self.peer
        try:
            name, payload = peer.remoting.encode(value, what="stream item", peer=peer)
        except errors.TrouperError as exc:
            self.fail(exc)
            return
        self._finish(StreamItem(self.id, name, payload), StreamEnd(self.id, None))

    def fail(self, exc: BaseException) -> None:
        self._finish(StreamEnd(self.id, self.detail(exc)))

    def _finish(self, *envs: Any) -> None:
        if self.peer.producers.get(self.id) is self:
            del self.peer.producers[self.id]
        if not self.cancelled:
            self.cancelled = True
            for env in envs:
                self.peer.send_quiet(env)


def on_stream_open(peer: Peer, env: StreamOpen) -> None:
    from ._inbound import bad_message, decode, deliver, forbidden, sender_of, target_of
    from ._traced import traced

    node_id = peer.remoting.node.id
    tracebacks = peer.remoting.config.remote_tracebacks

    def refuse(exc: errors.TrouperError) -> None:
        bad_message(peer, f"stream of {env.target.path}: {exc}")
        detail = error_detail(exc, node_id, env.target.path, tracebacks=tracebacks)
        peer.send_quiet(StreamEnd(env.id, detail))

    if env.id in peer.producers:
        refuse(errors.ConfigurationError(f"stream id {env.id} is already open"))
        return
    if len(peer.producers) >= peer.config.max_streams:
        refuse(
            errors.MailboxFull(f"node {node_id} has {peer.config.max_streams} streams open for you")
        )
        return
    cell = target_of(peer, env.target)
    if cell is None:
        refuse(errors.ActorDead(f"{env.target.path} is dead (or never lived on this node)"))
        return
    try:
        msg = decode(peer, env.type_name, env.payload)
    except errors.UnhandledMessage as exc:
        refuse(exc)
        return
    if (refused := forbidden(cell, msg)) is not None:
        refuse(refused)
        return
    sink = RemoteSink(peer, env.id, env.credit, env.target.path)
    peer.producers[env.id] = sink
    deliver(peer, cell, (msg, sender_of(peer, env.sender), traced(peer, env, sink)), None)


def on_stream_credit(peer: Peer, env: StreamCredit) -> None:
    producer = peer.producers.get(env.id)
    if producer is not None:
        producer.grant(env.n)


def on_stream_cancel(peer: Peer, env: StreamCancel) -> None:
    producer = peer.producers.pop(env.id, None)
    if producer is not None:
        producer.cancel()
