"""One QUIC stream as a ``trio.abc.Stream``.

The main stream (bidirectional) also carries the connection: closing it
closes the QUIC connection, and it opens and accepts lanes, which makes it a
``trouper.transports.LaneStream``. Lanes are one-way streams (write-only on
the side that opened them, read-only on the other).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from trouper._errors import ConnectionLost, TransportError

if TYPE_CHECKING:
    from ._quic_session import QuicSession

__all__ = ["QuicStream"]

# A writer waits while its stream holds more unacknowledged bytes than this,
# and writes at most WRITE_CHUNK at a time, so one stream buffers at most
# about HIGH + CHUNK bytes however large the payload.
SEND_HIGH_WATER = 1024 * 1024
WRITE_CHUNK = 256 * 1024
# How long closing the connection waits for sent data to be acknowledged.
CLOSE_LINGER = 2.0


class QuicStream(trio.abc.HalfCloseableStream):
    def __init__(self, session: QuicSession, id: int, *, readable: bool, writable: bool) -> None:
        self.session = session
        self.id = id
        self.readable = readable
        self.writable = writable
        self._inbox = bytearray()
        self._eof = False
        self._error: TransportError | None = None  # both directions are broken
        self._send_error: TransportError | None = None  # the peer closed cleanly
        self._closed = False
        self._fin_sent = False
        self._readable_event = trio.Event()
        self._writable_event = trio.Event()
        self._receiving = False
        self._sending = False

    def __repr__(self) -> str:
        return f"<QuicStream {self.id} of {self.session.peer}>"

    def server_certificate(self) -> bytes | None:
        return self.session.server_certificate()

    @property
    def is_main(self) -> bool:
        return self.session.main is self

    @property
    def buffered_in(self) -> int:
        return len(self._inbox)

    # --------------------------------------------------- from the session

    def data_received(self, data: bytes, end: bool) -> None:
        if data:
            self._inbox += data
        if end:
            self._eof = True
        self._readable_event.set()

    def broken(self, error: TransportError | None) -> None:
        """The stream ends: ``error`` None means the peer closed cleanly, so
        reads end with EOF like a TCP FIN and only writes fail."""
        if error is None:
            self._eof = True
            self._send_error = ConnectionLost(f"{self.session.peer} closed the connection")
        elif self._error is None:
            self._error = error
        self._readable_event.set()
        self._writable_event.set()

    def _buffered_out(self) -> int:
        streams = getattr(self.session.quic, "_streams", {})
        stream = streams.get(self.id)
        sender = getattr(stream, "sender", None)
        buffer = getattr(sender, "_buffer", None)
        return 0 if buffer is None else len(buffer)

    def may_send(self) -> bool:
        return self._failed is not None or self._buffered_out() <= SEND_HIGH_WATER

    @property
    def _failed(self) -> TransportError | None:
        return self._error or self._send_error

    def wake_writer(self) -> None:
        self._writable_event.set()

    # ------------------------------------------------------- trio.abc.Stream

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self.readable:
            raise trio.ClosedResourceError(f"{self!r} is a send-only lane")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint()
            while not self._inbox and not self._eof:
                self._check_open()
                if self._error is not None:
                    raise trio.BrokenResourceError(str(self._error)) from self._error
                self._readable_event = trio.Event()
                await self._readable_event.wait()
            self._check_open()
            if not self._inbox:
                return b""
            size = len(self._inbox) if max_bytes is None else min(max_bytes, len(self._inbox))
            data = bytes(self._inbox[:size])
            del self._inbox[:size]
            return data
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self.writable:
            raise trio.ClosedResourceError(f"{self!r} is a receive-only lane")
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            view = memoryview(data)
            if not view:
                await trio.lowlevel.checkpoint()
                self._check_sendable()
            for start in range(0, len(view), WRITE_CHUNK):
                await self._wait_writable()
                self.session.send_data(self.id, bytes(view[start : start + WRITE_CHUNK]))
                self.session.ack_with_data()
                self.session.transmit()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await self._wait_writable()

    async def send_eof(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        await trio.lowlevel.checkpoint()
        self._check_sendable()
        if not self._fin_sent:
            self._fin_sent = True
            self.session.send_data(self.id, b"", end=True)
            self.session.transmit()

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._readable_event.set()
        self._writable_event.set()
        session = self.session
        if self.is_main:
            await session.aclose(CLOSE_LINGER)
            return
        session.forget(self)
        if self._failed is None and not session.terminated.is_set():
            if self.writable and not self._fin_sent:
                self._fin_sent = True
                session.send_data(self.id, b"", end=True)
                session.linger(self)  # closing the connection waits for its data
            if self.readable and not self._eof:
                session.quic.stop_stream(self.id, 0)  # we will not read the rest: say so
            session.transmit()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------ lanes

    async def open_lane(self) -> trio.abc.SendStream:
        """Open a one-way stream to the peer beside this (main) stream."""
        self._check_open()
        return await self.session.open_lane()

    async def accept_lane(self) -> trio.abc.ReceiveStream:
        """Wait for a one-way stream the peer opened."""
        self._check_open()
        return await self.session.accept_lane()

    # ------------------------------------------------------------ internals

    def acknowledged(self) -> bool:
        return self._failed is not None or self._buffered_out() == 0

    async def wait_acknowledged(self) -> None:
        """Wait until everything written so far is acknowledged (or broken)."""
        while self.writable and self._failed is None and self._buffered_out() > 0:
            self._writable_event = trio.Event()
            self.session.wait_for_drain(self)
            # may_send() is true long before the buffer is empty: poll per ack.
            await self._writable_event.wait()
            await trio.lowlevel.checkpoint()

    async def _wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()
        while True:
            self._check_sendable()
            if self._buffered_out() <= SEND_HIGH_WATER:
                return
            self._writable_event = trio.Event()
            self.session.wait_for_drain(self)
            await self._writable_event.wait()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError(f"{self!r} is closed")

    def _check_sendable(self) -> None:
        self._check_open()
        failed = self._failed
        if failed is not None:
            raise trio.BrokenResourceError(str(failed)) from failed
        if self._fin_sent:
            raise trio.ClosedResourceError(f"{self!r}: send_eof was called")
