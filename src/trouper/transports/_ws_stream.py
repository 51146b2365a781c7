"""A ``trio.abc.Stream`` over one trio-websocket connection.

trio-websocket runs a reader task per connection in a nursery it is given,
and its ``open_websocket`` owns that nursery as a context manager. A
transport returns a stream instead, so here the nursery belongs to a small
owner, ``_Connection``, run as a task of its own: in the nursery the caller
passes to ``connect``, or else as a Trio *system task*. The owner does the
WebSocket handshake, then keeps the nursery open until the stream is
closed. ``WebSocketStream.aclose()`` closes the WebSocket, cancels the owner
and waits for it to finish, so a closed stream leaves no task behind.

Messages are binary, one per ``send_all`` (a ``send_all`` larger than
``max_message_size`` is split: the peer reads a byte stream, not messages).
A text message from the peer is bad input: ``receive_some`` closes the
WebSocket with 1003 and raises ``ProtocolError``, so the runtime logs it as a
protocol error and drops that one connection, as it does for garbage frames.
A close with 1000/1001 reads as EOF; any other ending raises a trouper
``TransportError`` (mapped in ``_mapping``, the one edge for library errors).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, cast

import trio
import trio_websocket as tws

from trouper._errors import HandshakeFailed

from ._mapping import map_exceptions
from ._message_stream import MessageStream

__all__ = ["WebSocketStream", "open_websocket_stream"]

_EOF_CODES = frozenset({1000, 1001})  # normal closure, going away
_CLOSE_NORMAL = 1000
_CLOSE_UNSUPPORTED_DATA = 1003
# trio-websocket reads the socket 4 KiB at a time by default: far too little
# for the 16 MiB frames the runtime may send.
_RECEIVE_BUFFER = 64 * 1024

#: Does the WebSocket handshake over the stream it is given, with the reader
#: task in the nursery it is given (duck-typed: only ``start_soon`` is used),
#: and returns the open connection.
Setup = Callable[[trio.Nursery, trio.abc.Stream], Awaitable[tws.WebSocketConnection]]


class _Recorder(trio.abc.Stream):
    """The transport stream under a WebSocket, keeping the error that broke it.

    trio-websocket reports a broken transport as a bare close code 1006; the
    recorded error (a TLS alert, a reset) is what explains it.
    """

    __slots__ = ("error", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.error: BaseException | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError as exc:
            self.error = self.error or exc
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            return await self.stream.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            self.error = self.error or exc
            raise

    async def aclose(self) -> None:
        await self.stream.aclose()


class _Connection:
    """Owns the nursery of one WebSocket connection's reader task.

    ``run`` is the owner task. trio-websocket sees this object as its
    nursery (``start_soon``), which lets it notice a reader that ends before
    the handshake completes (the peer hung up, a TLS alert) instead of
    waiting out the handshake timeout.
    """

    def __init__(self, transport: _Recorder, peer: str, handshake_timeout: float) -> None:
        self.transport = transport
        self.peer = peer
        self.handshake_timeout = handshake_timeout
        self.ws: tws.WebSocketConnection | None = None
        self.error: BaseException | None = None
        self.ready = trio.Event()  # the handshake is over, one way or the other
        self.finished = trio.Event()  # the owner task has ended
        self._scope = trio.CancelScope()
        self._handshake = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._reader_ended = False
        self._reader_failed = False

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: Any = None) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._reader, fn, args, name=name or f"websocket {self.peer}")

    async def _reader(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except BaseException:
            self._reader_failed = True  # the nursery raises it: that is the error
            raise
        finally:
            self._reader_ended = True
            self._handshake.cancel()  # no handshake can complete now (no-op after one)

    async def run(self, setup: Setup) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._handshake.deadline = trio.current_time() + self.handshake_timeout
                    with self._handshake:
                        self.ws = await setup(cast("trio.Nursery", self), self.transport)
                    if self.ws is None:
                        if self._reader_failed:
                            await trio.sleep_forever()  # until the nursery raises its error
                        raise self._handshake_error()
                    self.ready.set()
                    await trio.sleep_forever()  # until stop(): the reader lives in here
        except* Exception as group:
            self.error = _leaf(group)
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.transport)
            self.ready.set()
            self.finished.set()

    def _handshake_error(self) -> BaseException:
        if not self._reader_ended:
            return HandshakeFailed(
                f"WebSocket handshake with {self.peer}: no answer within {self.handshake_timeout}s"
            )
        if self.transport.error is not None:
            return self.transport.error  # mapped by the caller: a TLS alert, a reset...
        return HandshakeFailed(
            f"WebSocket handshake with {self.peer}: the connection closed before it completed"
        )

    async def stop(self) -> None:
        """Cancel the owner (and the reader) and wait until it has ended."""
        self._scope.cancel()
        with trio.CancelScope(shield=True):
            await self.finished.wait()


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def open_websocket_stream(
    stream: trio.abc.Stream,
    setup: Setup,
    *,
    peer: str,
    tls: bool,
    handshake_timeout: float,
    max_message_size: int,
    close_timeout: float,
    nursery: trio.Nursery | None = None,
) -> WebSocketStream:
    """Run ``setup`` (the WebSocket handshake) over ``stream`` in a new owner
    task; the stream wrapping the open connection, or a ``TransportError``.

    ``stream`` is closed on failure, and by the returned stream's ``aclose``.
    """
    conn = _Connection(_Recorder(stream), peer, handshake_timeout)
    name = f"trouper websocket {peer}"
    if nursery is None:
        trio.lowlevel.spawn_system_task(conn.run, setup, name=name)
    else:
        nursery.start_soon(conn.run, setup, name=name)
    try:
        await conn.ready.wait()
    except BaseException:
        await conn.stop()  # cancelled while waiting: nothing may outlive the call
        raise
    if conn.ws is None:
        await conn.stop()
        error = conn.error or HandshakeFailed(f"WebSocket handshake with {peer} was abandoned")
        with map_exceptions(peer, handshake=tls):
            raise error
    return WebSocketStream(conn, conn.ws, max_message_size, close_timeout)


class WebSocketStream(MessageStream):
    """One WebSocket connection as a byte stream of binary messages."""

    def __init__(
        self,
        conn: _Connection,
        ws: tws.WebSocketConnection,
        max_message_size: int,
        close_timeout: float,
    ) -> None:
        super().__init__(conn.peer, max_message_size, close_timeout)
        self.websocket = ws
        self._conn = conn

    async def _send_message(self, message: bytes) -> None:
        try:
            await self.websocket.send_message(message)
        except tws.ConnectionClosed as exc:
            self._lost(exc)

    async def _next_message(self) -> bytes:
        while True:
            try:
                message = await self.websocket.get_message()
            except tws.ConnectionClosed as exc:
                if exc.reason is not None and exc.reason.code in _EOF_CODES and not self._closed:
                    return b""
                self._lost(exc)
            if isinstance(message, str):
                await self._refuse_text()
            if message:  # an empty message carries nothing (and is not EOF)
                return message

    async def _refuse_text(self) -> NoReturn:
        with trio.move_on_after(self._close_timeout):
            await self.websocket.aclose(_CLOSE_UNSUPPORTED_DATA, "binary messages only")
        raise self._text_refused()

    def _lost(self, exc: tws.ConnectionClosed) -> NoReturn:
        if self._closed:
            raise trio.ClosedResourceError("this WebSocket stream is closed") from None
        # Chain what broke the transport, so a TLS alert maps to HandshakeFailed.
        with map_exceptions(self.peer):
            raise exc from self._conn.transport.error

    async def aclose(self) -> None:
        """Close with code 1000 (waiting at most ``close_timeout`` for the
        peer's answer; at once when cancelled), then end the reader task."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            with trio.move_on_after(self._close_timeout):
                await self.websocket.aclose(_CLOSE_NORMAL)
        finally:
            await self._conn.stop()
