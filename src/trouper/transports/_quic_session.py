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
* datagrams go out through one ``Endpoint`` per socket, synchronously (see
  ``_quic_endpoint``): sends never overlap and keep their order.

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
from collections.abc import Callable
from typing import Any

import trio
from aioquic.quic import events
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet import QuicErrorCode
from aioquic.tls import Epoch
from cryptography.hazmat.primitives.serialization import Encoding

from trouper._errors import ConnectionLost, HandshakeFailed, ProtocolError, TransportError

from ._mapping import map_quic_close
from ._quic_endpoint import Endpoint
from ._quic_stream import QuicStream
from ._quic_tls import check_client
from ._tls import ALPN_PROTOCOL, TLSConfig

__all__ = ["QuicSession"]

log = logging.getLogger("trouper.transports")

# A peer may leave lanes unaccepted or unread only up to these bounds: aioquic
# grants flow-control credit as data arrives, not as it is consumed, so these
# are what keep a misbehaving peer from growing our memory without limit.
MAX_PENDING_LANES = 256
MAX_RECEIVE_BUFFER = 64 * 1024 * 1024
# Acknowledge at least every this many received datagrams (RFC 9000 §13.2.2
# recommends two): aioquic alone acknowledges once per ack delay (1 ms),
# which caps a bulk sender at one congestion window per millisecond.
ACK_EVERY = 2
# The application error code for "closed on purpose"; 0 is NO_ERROR.
_CLOSE_OK = int(QuicErrorCode.NO_ERROR)


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
        self._ack_space: Any = None
        self._lingering: set[QuicStream] = set()  # closed lanes with unacknowledged data
        self._unacked = 0  # datagrams received since the last transmit

    def __repr__(self) -> str:
        return f"<QuicSession {self.peer}>"

    # ------------------------------------------------------------ input

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        """Feed one datagram in; the caller transmits after a batch of them."""
        self.quic.receive_datagram(data, addr, trio.current_time())
        self._process()
        self._unacked += 1
        if self._unacked >= ACK_EVERY:
            self.ack_with_data()  # "with data" or alone: the ACK is due now

    def transmit(self) -> None:
        """Send what the connection has to send, and re-arm its timer."""
        quic = self.quic
        self._unacked = 0
        datagrams = quic.datagrams_to_send(trio.current_time())
        if self._timer_scope is not None:
            deadline = quic.get_timer()
            self._timer_scope.deadline = math.inf if deadline is None else deadline
        if datagrams:
            try:
                self.endpoint.send(datagrams)
            except OSError as exc:
                self.fail(ConnectionLost(f"QUIC connection to {self.peer} failed: {exc}"))

    def ack_with_data(self) -> None:
        """Let a pending ACK ride on the data about to be sent.

        aioquic writes an ACK only once its ack delay has passed, so a reply
        sent 0.2 ms after a request goes without one and a separate ACK-only
        packet follows a moment later: a third datagram per round trip. The
        RFC lets an ACK go early; marking it due now puts it in this packet.
        """
        space = self._ack_space
        if space is None:
            spaces = getattr(self.quic, "_spaces", None)
            space = self._ack_space = spaces.get(Epoch.ONE_RTT) if spaces else None
        if space is not None and space.ack_at is not None:
            space.ack_at = 0.0

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
                self.transmit()

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
        if self._lingering:
            self._lingering = {s for s in self._lingering if not s.acknowledged()}
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
        try:
            with trio.move_on_after(linger):
                for stream in [*self.streams.values(), *self._lingering]:
                    await stream.wait_acknowledged()
        finally:
            # Even when cancelled (aclose_forcefully), the peer must hear of
            # the close: otherwise it waits for the idle timeout.
            self.closing = True
            self.quic.close(error_code=_CLOSE_OK, reason_phrase="closed")
            self.transmit()
            if self.error is None:
                self.error = ConnectionLost(f"QUIC connection to {self.peer} is closed")
            self._finish()

    def server_certificate(self) -> bytes | None:
        """The server's certificate (DER) as this end saw it in the handshake
        (the channel binding of ``_binding``; aioquic keeps the peer's)."""
        if self.is_client:
            certificate = getattr(self.quic.tls, "_peer_certificate", None)
        else:
            certificate = self.quic.configuration.certificate
        if certificate is None:
            return None
        der: bytes = certificate.public_bytes(Encoding.DER)
        return der

    # ------------------------------------------------------------ streams

    def wait_for_drain(self, stream: QuicStream) -> None:
        self._drain.add(stream)

    async def accept_main(self) -> QuicStream:
        await self._main_ready.wait()
        if self.main is None:
            raise self.error or ConnectionLost(f"QUIC connection to {self.peer} is closed")
        return self.main

    def send_data(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Queue ``data`` on a stream; aioquic's refusals (after a FIN, a
        reset, on a closed connection) become ``BrokenResourceError``."""
        try:
            self.quic.send_stream_data(stream_id, data, end_stream=end)
        except (RuntimeError, ValueError, AssertionError) as exc:
            raise trio.BrokenResourceError(
                f"QUIC stream {stream_id} to {self.peer}: {exc}"
            ) from exc

    def open_main(self) -> QuicStream:
        stream_id = self.quic.get_next_available_stream_id()
        self.send_data(stream_id, b"")  # creates it, so the next id is another
        stream = self.main = self.streams[stream_id] = QuicStream(
            self, stream_id, readable=True, writable=True
        )
        return stream

    async def open_lane(self) -> QuicStream:
        if self.terminated.is_set():
            raise self.error or ConnectionLost(f"QUIC connection to {self.peer} is closed")
        await trio.lowlevel.checkpoint()
        stream_id = self.quic.get_next_available_stream_id(is_unidirectional=True)
        self.send_data(stream_id, b"")  # creates it, so the next lane gets another id
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

    def linger(self, stream: QuicStream) -> None:
        """Keep a closed lane until its data is acknowledged (see aclose)."""
        self._lingering.add(stream)

    def forget(self, stream: QuicStream) -> None:
        self.streams.pop(stream.id, None)
        self._drain.discard(stream)
