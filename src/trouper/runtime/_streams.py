"""Streams: a handler that is an async generator, and whoever consumes it.

The producer side is the same for every consumer: ``pump`` runs the
generator in the actor's own nursery and hands each item to a ``StreamSink``,
which waits for the consumer's credit. A local consumer's sink is a bounded
memory channel (``StreamRequest``: its buffer *is* the credit); a consumer on
another node gets a sink from the remote layer that waits for credit sent
over the wire. Either way the producer can never run ahead of the consumer.

A consumer that leaves early ends only that stream: the generator is closed,
and whatever it raises while closing (yielding inside a nursery makes
``aclose`` raise) is logged, never a failure of the actor or the node.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from .._errors import ActorDead

if TYPE_CHECKING:
    from ..actors._actor import Actor, Entry
    from ._cell import Cell
    from ._ref import ActorRef

log = logging.getLogger("trouper")


class ConsumerGone(Exception):
    """Raised by a sink whose consumer left (internal to the runtime)."""


class StreamEnd:
    """Marks the normal end of a stream (an end without it is an abort)."""

    __slots__ = ()


STREAM_END = StreamEnd()


class StreamFailed:
    """Carries the exception that ended a stream to its consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class StreamSink:
    """Where a stream handler's items go. ``set``/``fail`` make a sink usable
    as a reply slot too (a plain handler reached through ``stream()``, or a
    message rejected before it ran)."""

    __slots__ = ()

    async def send(self, value: Any) -> None:
        """Hand over one item, waiting for credit; ``ConsumerGone`` if it left."""
        raise NotImplementedError

    async def end(self, exc: BaseException | None) -> None:
        """The producer is done (``exc`` if it failed); never raises."""
        raise NotImplementedError

    def set(self, value: Any) -> None:
        raise NotImplementedError

    def fail(self, exc: BaseException) -> None:
        raise NotImplementedError

    def attach(self, scope: trio.CancelScope) -> None:
        """``pump`` hands over the stream's cancel scope before it starts: a
        sink that learns its consumer left may cancel it, to end a generator
        that waits for something other than credit (a quiet subscription)
        instead of only failing its next ``send``."""

    async def release(self) -> None:
        """The producer is gone, however it ended: free what the sink holds
        (a QUIC lane, say). Runs shielded; the sink bounds its own time."""


class StreamRequest(StreamSink):
    """A local consumer: a bounded channel whose buffer is its credit."""

    __slots__ = ("gone", "grace", "scope", "send_channel", "sending", "trace")
    trace: Any  # the opener's tracing context, set only while tracing is on

    def __init__(self, send: trio.MemorySendChannel[Any], grace: float = 5.0) -> None:
        self.send_channel = send
        self.grace = grace
        self.scope: trio.CancelScope | None = None
        self.sending = False
        self.gone = False

    def attach(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        if self.gone:
            scope.cancel()

    def consumer_left(self) -> None:
        """The consumer left its ``stream()`` block. A producer blocked in
        ``send`` learns it there (``ConsumerGone``); one waiting inside the
        generator for something else (a quiet subscription) is cancelled
        now, rather than at its next ``send``, which may never come."""
        self.gone = True
        if self.scope is not None and not self.sending:
            self.scope.cancel()

    async def send(self, value: Any) -> None:
        self.sending = True
        try:
            await self.send_channel.send(value)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConsumerGone from None
        finally:
            self.sending = False
        if self.gone:  # it left while this send finished (not cancelled: it was sending)
            raise ConsumerGone

    async def end(self, exc: BaseException | None) -> None:
        marker: Any = STREAM_END if exc is None else StreamFailed(exc)
        channel = self.send_channel
        try:
            try:
                channel.send_nowait(marker)
            except trio.WouldBlock:
                # The consumer has a full window to read first; it gets the
                # end after it, or after ``grace`` seconds an abort.
                with trio.move_on_after(self.grace):
                    await channel.send(marker)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        channel.close()

    def set(self, value: Any) -> None:
        try:
            self.send_channel.send_nowait(value)
            self.send_channel.send_nowait(STREAM_END)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.send_channel.close()

    def fail(self, exc: BaseException) -> None:
        try:
            self.send_channel.send_nowait(StreamFailed(exc))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.send_channel.close()


class StreamReader:
    """Async iterator over what a stream handler yields."""

    __slots__ = ("_done", "_recv", "_ref")

    def __init__(self, recv: trio.MemoryReceiveChannel[Any], ref: ActorRef) -> None:
        self._recv = recv
        self._ref = ref
        self._done = False

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._recv.receive()
        except trio.EndOfChannel:
            self._done = True
            raise ActorDead(f"{self._ref.path} stopped before its stream ended") from None
        if type(item) is StreamEnd:
            self._done = True
            raise StopAsyncIteration
        if type(item) is StreamFailed:
            self._done = True
            raise item.exc
        return self._received(item)

    def _received(self, item: Any) -> Any:
        return item


async def pump(cell: Cell, entry: Entry, actor: Actor | None, msg: Any, sink: StreamSink) -> None:
    """Run one stream handler into ``sink``, in the actor's own nursery."""

    try:
        await _pump(cell, entry, actor, msg, sink)
    finally:
        with trio.CancelScope(shield=True):  # bounded by the sink itself
            await sink.release()


async def _pump(cell: Cell, entry: Entry, actor: Actor | None, msg: Any, sink: StreamSink) -> None:
    from . import _lifecycle as life

    agen = entry.fn(actor, msg)
    with trio.CancelScope() as scope:  # cancelled by the sink: the consumer left
        sink.attach(scope)
        try:
            tracing = cell.node.kernel.tracing
            if tracing is None:
                async for value in agen:
                    await sink.send(value)
            else:
                await _pump_traced(tracing, cell, agen, msg, sink)
        except ConsumerGone:
            await _close_quietly(agen, cell)
            return
        except BaseException as exc:
            if not life.is_failure(exc):
                # Cancelled: the actor is stopping or restarting (or the sink
                # cancelled it). The consumer hears so now, not never; a
                # remote one would also hold one of its ``max_streams``.
                sink.fail(ActorDead(f"{cell.ref.path} stopped before its stream ended"))
                await _close_quietly(agen, cell)
                raise
            # The actor fails at once, like any other handler (so nothing it
            # receives after this is handled by the failed instance), then the
            # consumer gets the error.
            life.dead_letter(cell, msg, None, f"failed: {exc!r}")
            if cell._actor is actor:
                life.crash_if_running(cell, exc)
            await sink.end(exc)
            return
        await sink.end(None)


async def _pump_traced(tracing: Any, cell: Cell, agen: Any, msg: Any, sink: StreamSink) -> None:
    """A span per item, around the generator's step only: none stays open
    across a ``yield`` (opentelemetry-python #2606), nor while the sink waits."""
    cls = cell._cls
    index = 0
    while True:
        with tracing.stream_item(cell.ref.path, cls, msg, index):
            try:
                value = await agen.__anext__()
            except StopAsyncIteration:
                return
        await sink.send(value)
        index += 1


async def _close_quietly(agen: Any, cell: Cell) -> None:
    from . import _lifecycle as life

    try:
        await agen.aclose()
    except BaseException as exc:
        if not life.is_failure(exc):
            raise
        log.debug("a stream of %s raised while closing: %r", cell.ref.path, exc)
