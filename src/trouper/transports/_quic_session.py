"""One QUIC connection driven from Trio: aioquic's sans-IO ``QuicConnection``
plus the few tasks and events that feed it.

aioquic never does I/O or reads a clock: it takes datagrams and a ``now``
and hands back events and datagrams. This module is the glue, and the rules
that keep it correct are the ones aioquic's own asyncio layer follows:

* after *every* call into the connection (a datagram in, a timer, a write),
  ``transmit()`` collects ``datagrams_to_send`` and re-arms the timer from
  ``get_timer()``: aioquic paces packets and runs loss recovery off that
  timer, so a connection whose timer is ignored stalls even without loss;
* ``send_stream_data`` buffers without limit, so a writer waits while its
  stream holds more than ``SEND_HIGH_WATER`` unacknowledged bytes;
* datagrams go out through one ``Endpoint`` per socket, whose lock keeps
  writers from overlapping (a second ``sendto`` on a busy trio socket raises
  ``BusyResourceError``) and keeps their order.

Streams: the first bidirectional stream the client opens is the *main*
stream, the byte stream the runtime speaks its handshake and frames on.
Unidirectional streams are *lanes*: extra one-way byte streams the runtime
opens for bulk transfers so a slow one never holds up the main stream (each
QUIC stream is delivered independently: a lost packet of one does not block
another). See ``trouper.transports.LaneStream``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from aioquic.quic import events
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet import QuicErrorCode

from trouper._errors import ConnectionLost, HandshakeFailed, ProtocolError, TransportError

from ._mapping import map_quic_close
from ._quic_stream import QuicStream
from ._quic_tls import check_client
from ._tls import ALPN_PROTOCOL, TLSConfig

__all__ = ["Endpoint", "QuicSession"]

log = logging.getLogger("trouper.transports")

# A peer may leave lanes unaccepted or unread only up to these bounds: aioquic
# grants flow-control credit as data arrives, not as it is consumed, so these
# are what keep a misbehaving peer from growing our memory without limit.
MAX_PENDING_LANES = 256
MAX_RECEIVE_BUFFER = 64 * 1024 * 1024
# The application error code for "closed on purpose"; 0 is NO_ERROR.
_CLOSE_OK = int(QuicErrorCode.NO_ERROR)


class Endpoint:
    """One UDP socket's sending side, shared by every connection on it."""

    def __init__(self, sock: trio.socket.SocketType, connected: bool) -> None:
        self.sock = sock
        self.connected = connected
        self._lock = trio.StrictFIFOLock()

    async def send(self, datagrams: list[tuple[bytes, NetworkAddress]]) -> None:
        async with self._lock:
            for data, addr in datagrams:
                try:
                    if self.connected:
                        await self.sock.send(data)
                    else:
                        await self.sock.sendto(data, addr)
                except BlockingIOError:
                    pass  # a full socket buffer: QUIC treats it as loss and resends
                except OSError as exc:
                    if not self.connected:
                        # One client's address failing must not stop the server.
                        log.debug("sendto %s failed: %s", addr, exc)
                        continue
                    raise


Route = Callable[[bytes, "QuicSession | None"], None]


class QuicSession:
    """A QUIC connection, its streams, and the events between them."""

    def __init__(
        self,
        quic: QuicConnection,
        endpoint: Endpoint,
        peer: str,
        *,
        tls: TLSConfig | None = None,
        route: Route | None = None,
    ) -> None:
        self.quic = quic
        self.endpoint = endpoint
        self.peer = peer
        self.is_client = quic.configuration.is_client
        self._tls = tls  # set on a server that checks client certificates
        self._route = route
        self.handshake_done = trio.Event()  # the handshake is complete and confirmed
        self.terminated = trio.Event()
        self.error: TransportError | None = None
        self.closing = False
        self.streams: dict[int, QuicStream] = {}
        self.main: QuicStream | None = None
        self._main_ready = trio.Event()
        self._lanes: deque[QuicStream] = deque()
        self._lane_ready = trio.Event()
        self._timer_scope: trio.CancelScope | None = None
        self._drain: set[QuicStream] = set()  # writers waiting for acknowledgements
        self.pump_scope = trio.CancelScope()

    def __repr__(self) -> str:
        return f"<QuicSession {self.peer}>"

    # ------------------------------------------------------------ input

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        self.quic.receive_datagram(data, addr, trio.current_time())
        self._process()

    async def transmit(self) -> None:
        """Send what the connection has to send, and re-arm its timer."""
        quic = self.quic
        datagrams = quic.datagrams_to_send(trio.current_time())
        if self._timer_scope is not None:
            deadline = quic.get_timer()
            self._timer_scope.deadline = math.inf if deadline is None else deadline
        if datagrams:
            try:
                await self.endpoint.send(datagrams)
            except OSError as exc:
                self.fail(ConnectionLost(f"QUIC connection to {self.peer} failed: {exc}"))

    async def run_timer(self) -> None:
        """Fire aioquic's timer (loss recovery, pacing, idle) until the end."""
        quic = self.quic
        while not self.terminated.is_set():
            deadline = quic.get_timer()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await self.terminated.wait()
            self._timer_scope = None
            now = trio.current_time()
            deadline = quic.get_timer()
            if deadline is not None and now >= deadline:
                quic.handle_timer(now)
                self._process()
                await self.transmit()

    def _process(self) -> None:
        quic = self.quic
        while (event := quic.next_event()) is not None:
            kind = type(event)
            if kind is events.StreamDataReceived:
                self._on_stream_data(event)  # type: ignore[arg-type]
            elif kind is events.HandshakeCompleted:
                self._on_handshake(event)  # type: ignore[arg-type]
            elif kind is events.StreamReset:
                self._on_stream_reset(event.stream_id, event.error_code)  # type: ignore[attr-defined]
            elif kind is events.StopSendingReceived:
                self._on_stop_sending(event)  # type: ignore[arg-type]
            elif kind is events.ConnectionIdIssued and self._route is not None:
                self._route(event.connection_id, self)  # type: ignore[attr-defined]
            elif kind is events.ConnectionIdRetired and self._route is not None:
                self._route(event.connection_id, None)  # type: ignore[attr-defined]
            elif kind is events.ConnectionTerminated:
                self._on_terminated(event)  # type: ignore[arg-type]
        if (
            self.is_client
            and not self.handshake_done.is_set()
            and getattr(quic, "_handshake_confirmed", False)
        ):
            self.handshake_done.set()
        if self._drain:
            for stream in list(self._drain):
                if stream.may_send():
                    self._drain.discard(stream)
                    stream.wake_writer()

    def _on_handshake(self, event: events.HandshakeCompleted) -> None:
        if event.alpn_protocol != ALPN_PROTOCOL:
            self.close_with(
                QuicErrorCode.CRYPTO_ERROR + 120,
                f"peer did not negotiate ALPN {ALPN_PROTOCOL!r} (got {event.alpn_protocol!r})",
            )
            return
        if self._tls is not None:
            why = check_client(self.quic, self._tls)
            if why is not None:
                self.error = HandshakeFailed(f"TLS handshake with {self.peer}: {why}")
                return
        if not self.is_client:
            self.handshake_done.set()  # a server is confirmed once complete

    def _stream(self, stream_id: int) -> QuicStream | None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            return stream
        unidirectional = bool(stream_id & 2)
        if unidirectional:
            if len(self._lanes) >= MAX_PENDING_LANES:
                self.close_with(QuicErrorCode.STREAM_LIMIT_ERROR, "too many unaccepted lanes")
                return None
            stream = QuicStream(self, stream_id, readable=True, writable=False)
            self._lanes.append(stream)
            self._lane_ready.set()
        elif self.main is None and not self.is_client:
            stream = self.main = QuicStream(self, stream_id, readable=True, writable=True)
            self._main_ready.set()
        else:
            self.close_with(QuicErrorCode.STREAM_STATE_ERROR, "only one bidirectional stream")
            return None
        self.streams[stream_id] = stream
        return stream

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        stream = self._stream(event.stream_id)
        if stream is None:
            return
        if stream.buffered_in + len(event.data) > MAX_RECEIVE_BUFFER:
            self.close_with(QuicErrorCode.FLOW_CONTROL_ERROR, "receive buffer overflow")
            return
        stream.data_received(event.data, event.end_stream)

    def _on_stream_reset(self, stream_id: int, code: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.broken(ConnectionLost(f"{self.peer} reset stream {stream_id} ({code})"))

    def _on_stop_sending(self, event: events.StopSendingReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.broken(ConnectionLost(f"{self.peer} stopped reading stream {event.stream_id}"))

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        if self.error is None:
            self.error = map_quic_close(
                event.error_code,
                event.reason_phrase,
                self.peer,
                handshake=not self.handshake_done.is_set(),
                by_us=self.closing,
            )
        self._finish()

    # ------------------------------------------------------------- ending

    def close_with(self, code: int, reason: str) -> None:
        """Close for a protocol reason of ours (bad input from the peer)."""
        if self.error is None:
            self.error = ProtocolError(f"QUIC connection to {self.peer}: {reason}")
        self.closing = True
        self.quic.close(error_code=int(code), reason_phrase=reason)

    def fail(self, error: TransportError) -> None:
        """The network broke under us: end everything now."""
        if self.error is None:
            self.error = error
        self._finish()

    def _finish(self) -> None:
        if self.terminated.is_set():
            return
        self.terminated.set()
        self.handshake_done.set()
        self._main_ready.set()
        self._lane_ready.set()
        for stream in list(self.streams.values()):
            stream.broken(self.error)
        self._drain.clear()
        if self._route is not None:
            self._route(b"", self)  # b"" means "forget every route of this session"
        self.pump_scope.cancel()

    async def aclose(self, linger: float) -> None:
        """Close gracefully: let sent data be acknowledged (up to ``linger``
        seconds), then send CONNECTION_CLOSE."""
        if self.terminated.is_set():
            await trio.lowlevel.checkpoint()
            return
        with trio.move_on_after(linger):
            for stream in list(self.streams.values()):
                await stream.wait_acknowledged()
        self.closing = True
        self.quic.close(error_code=_CLOSE_OK, reason_phrase="closed")
        with trio.CancelScope(shield=True):
            await self.transmit()
        if self.error is None:
            self.error = ConnectionLost(f"QUIC connection to {self.peer} is closed")
        self._finish()

    # ------------------------------------------------------------ streams

    def wait_for_drain(self, stream: QuicStream) -> None:
        self._drain.add(stream)

    async def accept_main(self) -> QuicStream:
        await self._main_ready.wait()
        if self.main is None:
            raise self.error or ConnectionLost(f"QUIC connection to {self.peer} is closed")
        return self.main

    def open_main(self) -> QuicStream:
        stream_id = self.quic.get_next_available_stream_id()
        stream = self.main = self.streams[stream_id] = QuicStream(
            self, stream_id, readable=True, writable=True
        )
        return stream

    async def open_lane(self) -> QuicStream:
        if self.terminated.is_set():
            raise self.error or ConnectionLost(f"QUIC connection to {self.peer} is closed")
        await trio.lowlevel.checkpoint()
        stream_id = self.quic.get_next_available_stream_id(is_unidirectional=True)
        stream = self.streams[stream_id] = QuicStream(
            self, stream_id, readable=False, writable=True
        )
        return stream

    async def accept_lane(self) -> QuicStream:
        while not self._lanes:
            if self.terminated.is_set():
                raise self.error or ConnectionLost(f"QUIC connection to {self.peer} is closed")
            self._lane_ready = trio.Event()
            await self._lane_ready.wait()
        await trio.lowlevel.checkpoint()
        return self._lanes.popleft()

    def forget(self, stream: QuicStream) -> None:
        self.streams.pop(stream.id, None)
        self._drain.discard(stream)


async def pump(
    session: QuicSession,
    receive: Callable[[], Awaitable[tuple[bytes, Any]]],
) -> None:
    """A client connection's own receive loop and timer, until it ends.

    Anything the network throws ends this connection only (the session
    records why); it never escapes, because this may run as a system task.
    """
    try:
        with session.pump_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(session.run_timer)
                while True:
                    data, addr = await receive()
                    session.datagram_received(data, addr)
                    await session.transmit()
    except OSError as exc:
        detail = exc.strerror or str(exc) or type(exc).__name__
        if isinstance(exc, ConnectionRefusedError):
            detail = "refused (is the node listening there?)"
        session.fail(ConnectionLost(f"QUIC connection to {session.peer}: {detail}"))
    except Exception as exc:
        log.exception("QUIC connection to %s failed", session.peer)
        session.fail(ConnectionLost(f"QUIC connection to {session.peer} failed: {exc!r}"))
    finally:
        session.fail(session.error or ConnectionLost(f"QUIC connection to {session.peer} ended"))
