"""Streams across nodes, with credit-based flow control end to end.

The consumer grants ``window`` credits in ``StreamOpen`` and more as its
application takes items (``CreditGranter``: half a window at a time); the
producer's forwarder sends an item only while it holds a credit, and the
actor's generator is suspended behind a one-slot local channel meanwhile. So
at most ``window`` items are ever in flight or buffered, however slow the
consumer: memory stays bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import msgspec
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
from ..protocols._envelopes import ErrorDetail
from ._ref import (
    STREAM_END,
    ActorRef,
    StreamFailed,
    StreamReader,
    StreamRequest,
    _put,
    current_sender,
)
from ._ref import StreamEnd as EndMarker
from ._states import DEAD
from ._wire import error_detail, wire_ref

if TYPE_CHECKING:
    from ._cell import Cell
    from ._peer import Peer


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
        self.granter.on_item()  # ProtocolError if the producer overran its credit
        try:
            self.send.send_nowait(value)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the consumer left; its StreamCancel is on the way

    def end(self, exc: BaseException | None) -> None:
        try:
            self.send.send_nowait(STREAM_END if exc is None else StreamFailed(exc))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.send.close()

    def consumed(self) -> None:
        credit = self.granter.on_processed(1)
        if credit:
            self.peer.send_quiet(StreamCredit(self.id, credit))


class RemoteStreamReader(StreamReader):
    """A ``StreamReader`` that grants credit back as items are taken."""

    __slots__ = ("_stream",)

    def __init__(self, stream: RemoteStream, ref: ActorRef) -> None:
        super().__init__(stream.recv, ref)
        self._stream = stream

    async def __anext__(self) -> Any:
        item = await super().__anext__()
        self._stream.consumed()
        return item


@asynccontextmanager
async def open_remote_stream(
    peer: Peer, ref: ActorRef, msg: Any, window: int
) -> AsyncIterator[StreamReader]:
    name, payload = peer.remoting.codec.encode_payload(msg)
    stream_id = next(peer.ids)
    stream = RemoteStream(peer, stream_id, window)
    sender = current_sender()
    peer.send(
        StreamOpen(
            stream_id,
            wire_ref(ref),
            name,
            msgspec.Raw(payload),
            window,
            None if sender is None else wire_ref(sender),
        )
    )
    peer.streams[stream_id] = stream
    await trio.lowlevel.checkpoint()
    try:
        yield RemoteStreamReader(stream, ref)
    finally:
        stream.recv.close()
        if peer.streams.pop(stream_id, None) is not None:
            peer.send_quiet(StreamCancel(stream_id, "consumer left"))


class Producer:
    """The producer's side: credits from the consumer, and a cancel scope."""

    __slots__ = ("credit", "event", "id", "scope")

    def __init__(self, id: int, credit: int) -> None:
        self.id = id
        self.credit = CreditWindow(credit)
        self.event = trio.Event()
        self.scope = trio.CancelScope()

    def grant(self, n: int) -> None:
        self.credit.grant(n)
        self.event.set()


async def open_producer(
    peer: Peer, env: StreamOpen, cell: Cell | None, msg: Any, sender: ActorRef | None
) -> None:
    node = peer.remoting.node
    if cell is None or cell._state == DEAD:
        dead = errors.ActorDead(f"{env.target.path} is dead")
        peer.send_quiet(StreamEnd(env.id, error_detail(dead, node.id, env.target.path)))
        return
    send, recv = trio.open_memory_channel[Any](1)
    producer = Producer(env.id, env.credit)
    peer.producers[env.id] = producer
    await _put(cell, (msg, sender, StreamRequest(send)))
    node._nursery.start_soon(_forward, peer, producer, recv, env.target.path)


async def _forward(
    peer: Peer, producer: Producer, recv: trio.MemoryReceiveChannel[Any], path: str
) -> None:
    node_id = peer.remoting.node.id
    codec = peer.remoting.codec
    end: ErrorDetail | None = None
    lane = None
    with producer.scope:
        lane = await peer.open_lane()
        async with recv:
            while True:
                try:
                    item = await recv.receive()
                except trio.EndOfChannel:
                    dead = errors.ActorDead(f"{path} stopped before its stream ended")
                    end = error_detail(dead, node_id, path)
                    break
                if type(item) is EndMarker:
                    break
                if type(item) is StreamFailed:
                    end = error_detail(item.exc, node_id, path)
                    break
                while not producer.credit.can_send:
                    producer.event = trio.Event()
                    await producer.event.wait()
                producer.credit.consume()
                try:
                    name, payload = codec.encode_payload(item)
                except errors.TrouperError as exc:
                    end = error_detail(exc, node_id, path)
                    break
                env = StreamItem(producer.id, name, msgspec.Raw(payload))
                if lane is None:
                    peer.send_quiet(env)
                elif not await _send_on_lane(lane, env):
                    producer.scope.cancel()  # the connection is gone: so is the consumer
    if not producer.scope.cancelled_caught:
        env_end = StreamEnd(producer.id, end)
        if lane is None:
            peer.send_quiet(env_end)
        else:
            await _send_on_lane(lane, env_end)
    if lane is not None:
        with trio.move_on_after(_LANE_CLOSE_TIMEOUT, shield=True):
            await lane[0].aclose()
    peer.producers.pop(producer.id, None)


# Closing a lane only sends its FIN; this bounds it if the link is stuck.
_LANE_CLOSE_TIMEOUT = 5.0


async def _send_on_lane(lane: tuple[trio.abc.SendStream, FrameEncoder], env: Any) -> bool:
    """One envelope as one frame on a lane; False if the lane broke."""
    stream, encoder = lane
    try:
        await stream.send_all(encoder.encode([env]))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return False
    return True
