"""``WebSocketSession``: one actor per WebSocket connection.

The session runs a reader task and a writer task in its own nursery
(``ctx.start_soon``). The reader turns client frames into messages to the
session itself, so ``on_text``/``on_bytes`` run in the actor's own task, one
at a time, like any handler. The writer drains a bounded outbox into the
socket; ``send_text``/``send_bytes`` never block: a full outbox drops the
message and starts the slow-consumer timer.

On the gateway's own HTTP/1.1 path (``connection.socket`` set) a frame
offered while nothing is queued is written straight into the socket by the
sender's task (``WsSocket.write_now``): the writer task only wakes for
what the socket could not take at once, and then writes everything queued
in one ``send_all``. Queued or being written, a session holds at most
``outbox_size`` frames.

hypercorn writes to the socket in a shielded ``send_all``, so a client that
stops reading can hold a write for ever. The session never waits for such a
write longer than ``close_timeout``: the ASGI handler then returns without a
closing handshake and hypercorn closes the TCP connection, which frees the
writer.
"""

# No ``from __future__ import annotations`` here: the handlers' message
# annotations must be real classes, because the dispatch table of a subclass
# defined in another module resolves string annotations in *that* module.
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
import trio

from ..actors import Actor, handler, is_handler, message
from ..runtime import cell_of
from ._connection import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    WebSocketConnection,
    WsOpen,
    WsPeerClosed,
    WsReceived,
    WsSlowCheck,
)
from ._wsfast import FLUSH, OWING, WRITTEN
from ._wsframe import Outgoing


@message(name="trouper.web.SendText")
class SendText(msgspec.Struct, frozen=True):
    """Told to a ``WebSocketSession``: queue ``text`` as a text frame, as its
    ``send_text`` does (so any actor, on any node, can send to a session)."""

    text: str


@message(name="trouper.web.SendBytes")
class SendBytes(msgspec.Struct, frozen=True):
    """Told to a ``WebSocketSession``: queue ``data`` as a binary frame."""

    data: bytes


def _marking_failure(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(self: "WebSocketSession", msg: Any) -> Any:
        try:
            return await fn(self, msg)
        except Exception:
            self._failed = True
            raise

    return wrapper


class WebSocketSession(Actor):
    """Base class of the actor behind each WebSocket connection.

    Override ``on_connect``, ``on_text``, ``on_bytes`` and ``on_disconnect``;
    send with ``send_text``/``send_bytes``; end with ``close``. Subclasses
    with their own ``__init__`` take the connection first and pass it on:
    ``super().__init__(connection)``; one that overrides ``on_stop`` calls
    ``await super().on_stop()`` (without it the socket still closes, but
    without flushing the outbox). An exception in a hook fails this session
    only: its socket closes with code 1011.

    ``close_on_drop = True`` (a class attribute) closes the session as too
    slow (1008 ``consumer-too-slow``, its outbox discarded) as soon as one
    frame is dropped, instead of after ``slow_consumer_timeout`` and only if
    the client never catches up: for protocols where a lost frame leaves the
    client wrong until it reconnects and syncs (a CRDT's updates).
    """

    close_on_drop = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A failure in any handler of a session closes its socket with 1011:
        # wrap the subclass's own handlers (before the dispatch table is built).
        for name, fn in list(vars(cls).items()):
            if is_handler(fn) and inspect.iscoroutinefunction(fn):
                setattr(cls, name, _marking_failure(fn))
        super().__init_subclass__(**kwargs)

    def __init__(self, connection: WebSocketConnection) -> None:
        self.connection = connection
        config = connection.config
        self._outbox, self._outbox_out = trio.open_memory_channel[Outgoing](config.outbox_size)
        self._outbox_size = config.outbox_size
        self._outbox_bytes = config.outbox_bytes
        self._queued = 0  # frames in the outbox and in the writer's hands
        self._queued_bytes = 0  # and their payloads' size
        self._inflight = trio.Semaphore(config.inbox_size)
        self._accepted = trio.Event()
        self._writer_done = trio.Event()
        self._close_request: tuple[int, str] | None = None
        self._failed = False
        self._full_since: float | None = None
        self._slow_token = 0
        #: Messages dropped because the outbox was full.
        self.dropped = 0

    # ---------------------------------------------------------- public API

    @property
    def scope(self) -> Mapping[str, Any]:
        """The ASGI scope of the connection (path, headers, client...)."""
        return self.connection.scope

    @property
    def closing(self) -> bool:
        """True once a close was asked for or the client went away."""
        return self._close_request is not None or self.connection.disconnected.is_set()

    @property
    def queued(self) -> int:
        """Frames queued or being written now (never more than ``outbox_size``)."""
        return self._queued

    @property
    def queued_bytes(self) -> int:
        """Their payloads' size (over ``outbox_bytes`` only by one large frame)."""
        return self._queued_bytes

    async def on_connect(self) -> None:
        """The WebSocket was accepted (runs in the actor's task)."""

    async def on_text(self, text: str) -> None:
        """A text frame arrived."""

    async def on_bytes(self, data: bytes) -> None:
        """A binary frame arrived."""

    async def on_disconnect(self, code: int) -> None:
        """The connection is over: ``code`` is the server's close code, or the
        one hypercorn reports for a client's close (1006: it does not pass on
        the client's own code)."""

    def send_text(self, text: str) -> bool:
        """Queue a text frame; False if it was dropped (closing, or outbox full)."""
        return self._offer(Outgoing(text))

    def send_bytes(self, data: bytes) -> bool:
        """Queue a binary frame; False if it was dropped (closing, or outbox full)."""
        return self._offer(Outgoing(None, bytes(data)))

    def send_shared(self, frame: Outgoing, direct: bool = True) -> bool:
        """Queue ``frame``, shared with other sessions (``trouper.web.send_text``
        encodes a broadcast's frame once for all of them); ``direct=False``
        leaves the write to this session's writer task."""
        return self._offer(frame, direct)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the connection after what is queued, then stop this actor.

        Inside a handler the stop happens when the handler returns.
        """
        self._request_close(code, reason)
        self.ctx.stop()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ lifecycle

    async def on_stop(self) -> None:
        conn = self.connection
        parent = self.ctx.parent
        parent_cell = None if parent is None else cell_of(parent)
        stopping = parent_cell is not None and parent_cell.stopping  # the gateway is going
        if self._close_request is None:
            code = CLOSE_GOING_AWAY if stopping else CLOSE_NORMAL
            self._request_close(CLOSE_INTERNAL_ERROR if self._failed else code, "")
        code, reason = self._close_request or (CLOSE_NORMAL, "")
        timeout = conn.config.close_timeout
        if stopping:
            timeout = conn.gateway.shutdown_budget(timeout)
        if self._accepted.is_set():
            with trio.move_on_after(timeout):
                await self._writer_done.wait()  # the outbox flushed, the close frame sent
                await conn.disconnected.wait()  # the closing handshake
        self._discard_outbox()
        # If the writer could not send the close frame in time, give up on it
        # (hypercorn then closes the TCP connection when the handler returns).
        await conn.send_close(code, reason, timeout=0 if self._accepted.is_set() else timeout)
        await self.on_disconnect(code if conn.close_sent else conn.disconnect_code)

    # ------------------------------------------------------------ internals

    def _offer(self, frame: Outgoing, direct: bool = True) -> bool:
        if self.closing:
            return False
        socket = self.connection.socket
        if direct and not self._queued and socket is not None and self._accepted.is_set():
            written = socket.write_now(frame)
            if written == WRITTEN:
                self.connection.gateway.metrics.frames_sent += 1
                return True
            if written == OWING:
                frame = FLUSH  # the writer task sends the rest of the frame
        size = frame.size
        try:
            # A frame over outbox_bytes on its own still goes into an empty
            # outbox: a large message is slow, not refused.
            if self._queued >= self._outbox_size or (
                self._queued and self._queued_bytes + size > self._outbox_bytes
            ):
                raise trio.WouldBlock
            self._outbox.send_nowait(frame)
            self._queued += 1
            self._queued_bytes += size
        except trio.WouldBlock:
            self.dropped += 1
            if self._full_since is None:
                self._full_since = trio.current_time()
                timeout = (
                    0.0 if self.close_on_drop else self.connection.config.slow_consumer_timeout
                )
                self.ctx.send_after(timeout, WsSlowCheck(self._slow_token))
            return False
        return True

    def _request_close(self, code: int, reason: str) -> None:
        if self._close_request is None:
            self._close_request = (code, reason)
            self._outbox.close()  # the writer sends what is queued, then the close frame

    def _discard_outbox(self) -> None:
        while True:
            try:
                frame = self._outbox_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            self._queued -= 1
            self._queued_bytes -= frame.size

    @handler
    async def _trouper_ws_open(self, msg: WsOpen) -> None:
        self.ctx.start_soon(self._reader)
        self.ctx.start_soon(self._writer)
        await self.connection.send({"type": "websocket.accept"})
        self._accepted.set()
        await self._guarded(self.on_connect())

    @handler
    async def _trouper_ws_received(self, msg: WsReceived) -> None:
        try:
            if msg.text is not None:
                await self._guarded(self.on_text(msg.text))
            elif msg.data is not None:
                await self._guarded(self.on_bytes(msg.data))
        finally:
            self._inflight.release()

    @handler
    async def _trouper_ws_send_text(self, msg: SendText) -> None:
        self.send_text(msg.text)

    @handler
    async def _trouper_ws_send_bytes(self, msg: SendBytes) -> None:
        self.send_bytes(msg.data)

    @handler
    async def _trouper_ws_peer_closed(self, msg: WsPeerClosed) -> None:
        self.ctx.stop()

    @handler
    async def _trouper_ws_slow(self, msg: WsSlowCheck) -> None:
        if msg.token == self._slow_token and self._full_since is not None:
            self._discard_outbox()
            self.connection.gateway.metrics.slow_consumers += 1
            await self.close(CLOSE_POLICY, "consumer-too-slow")

    async def _guarded(self, hook: Awaitable[None]) -> None:
        try:
            await hook
        except Exception:
            self._failed = True  # this session fails; its socket closes with 1011
            raise

    async def _reader(self) -> None:
        conn = self.connection
        me = self.ctx.self_ref
        try:
            while True:
                event = await conn.receive()
                kind = event.get("type")
                if kind == "websocket.receive":
                    conn.gateway.metrics.frames_received += 1
                    await self._inflight.acquire()
                    await me.tell(WsReceived(event.get("text"), event.get("bytes")))
                elif kind == "websocket.disconnect":
                    conn.mark_disconnected(int(event.get("code", CLOSE_ABNORMAL)))
                    self._discard_outbox()
                    if self._close_request is None:
                        await me.tell(WsPeerClosed())
                    await trio.sleep_forever()  # until the actor stops
        finally:
            conn.finished.set()  # the ASGI handler may finish the connection now

    async def _writer(self) -> None:
        conn = self.connection
        socket = conn.socket
        half, half_bytes = conn.config.outbox_size // 2, conn.config.outbox_bytes // 2
        try:
            await self._accepted.wait()
            async for frame in self._outbox_out:
                if conn.close_sent:
                    break
                if socket is None:
                    await conn.send(frame.event())
                    sent, size = 1, frame.size
                else:  # everything queued, in one write
                    batch = [frame]
                    while True:
                        try:
                            batch.append(self._outbox_out.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await socket.send_frames(batch)
                    sent, size = len(batch), sum(f.size for f in batch)
                self._queued -= sent
                self._queued_bytes -= size
                conn.gateway.metrics.frames_sent += sent
                drained = self._queued <= half and self._queued_bytes <= half_bytes
                if self._full_since is not None and drained and not self.close_on_drop:
                    self._full_since = None  # drained: the client keeps up after all
                    self._slow_token += 1
            code, reason = self._close_request or (CLOSE_NORMAL, "")
            await conn.send_close(code, reason, timeout=conn.config.close_timeout)
        finally:
            self._writer_done.set()
