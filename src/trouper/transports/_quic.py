"""quic:// — QUIC (RFC 9000) over Trio UDP sockets, with aioquic doing the
protocol (sans-IO) and ``QuicSession`` the glue.

A client dials with a connected UDP socket of its own (so an ICMP "port
unreachable" shows up as a refused connection, and replies from another
address are ignored by the kernel). A server owns one socket and routes each
datagram by its destination connection ID to a session, keeping the routing
table current from ``ConnectionIdIssued``/``ConnectionIdRetired`` events.
With ``retry=True`` a server validates a client's address with a Retry
round trip before keeping any state for it.
"""

from __future__ import annotations

import logging
import os
import socket

import trio
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # re-exported, untyped
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import NetworkAddress
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler

from trouper._errors import ConfigurationError, ConnectionLost, HandshakeFailed, TransportError

from ._address import Address
from ._credentials import Material, TLSCredentials, TLSSource, credentials_for
from ._quic_endpoint import BATCH, Endpoint, OpenEndpoint, open_udp_endpoint
from ._quic_recovery import ReorderTolerantConnection
from ._quic_session import QuicSession
from ._quic_stream import QuicStream
from ._quic_tls import (
    MutualTLSConnection,
    client_configuration,
    server_configuration,
    wants_client_cert,
)
from ._registry import Handler
from ._tls import TLSConfig

__all__ = ["QuicTransport"]

log = logging.getLogger("trouper.transports")


async def _resolve(address: Address) -> tuple[int, NetworkAddress]:
    """The first address ``host`` resolves to, as an IP: replies come from
    an IP, and aioquic compares them with the address it was given."""
    try:
        infos = await trio.socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP
        )
    except OSError as exc:
        raise ConnectionLost(f"cannot resolve {address.url}: {exc}") from exc
    if not infos:
        raise ConnectionLost(f"cannot resolve {address.url}: no addresses")
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


class QuicTransport:
    """QUIC with TLS 1.3, mutual when the ``TLSConfig`` has a CA.

    ``retry``: validate client addresses with a Retry packet first (one more
    round trip per connection; protects against spoofed-source floods).
    ``handshake_timeout``: how long a dial or an accepted connection may take
    to complete the QUIC+TLS handshake and open its main stream.
    ``idle_timeout``: a connection with no packets for this long is dead
    (trouper's own heartbeats detect a dead peer much sooner).
    ``network``: opens the UDP endpoints (real sockets by default; a test
    passes a simulated lossy network here).
    """

    scheme: str = "quic"

    def __init__(
        self,
        *,
        retry: bool = False,
        handshake_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        network: OpenEndpoint = open_udp_endpoint,
    ) -> None:
        if not handshake_timeout > 0 or not idle_timeout > 0:
            raise ConfigurationError("handshake_timeout and idle_timeout must be > 0")
        self.retry = retry
        self.network = network
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(retry={self.retry})"

    # ------------------------------------------------------------- client

    async def connect(
        self,
        address: Address,
        *,
        tls: TLSSource | None = None,
        nursery: trio.Nursery | None = None,
    ) -> trio.abc.Stream:
        """Dial ``address``; returns the main stream once the handshake is
        confirmed. The connection's receive loop runs in ``nursery`` (or, when
        none is given, in a system task) until the stream is closed."""
        self._check(address)
        material = credentials_for(tls).material
        config = client_configuration(material, address.host, idle_timeout=self.idle_timeout)
        family, peer_addr = await _resolve(address)
        try:
            endpoint = self.network(family, connect=peer_addr)
        except OSError as exc:
            raise ConnectionLost(f"cannot reach {address.url}: {exc}") from exc
        quic = ReorderTolerantConnection(configuration=config)
        session = QuicSession(quic, endpoint, address.url)
        if nursery is None:
            trio.lowlevel.spawn_system_task(pump, session, endpoint, name=f"quic {address.url}")
        else:
            nursery.start_soon(pump, session, endpoint, name=f"quic {address.url}")
        try:
            quic.connect(peer_addr, now=trio.current_time())
            session.transmit()
            with trio.move_on_after(self.handshake_timeout):
                await session.handshake_done.wait()
            if session.error is not None:
                raise session.error
            if not session.handshake_done.is_set():
                raise HandshakeFailed(
                    f"QUIC handshake with {address.url}: no answer within {self.handshake_timeout}s"
                )
        except BaseException:
            session.fail(session.error or ConnectionLost(f"dialling {address.url} was abandoned"))
            raise
        return session.open_main()

    # ------------------------------------------------------------- server

    async def serve(
        self,
        address: Address,
        handler: Handler,
        *,
        tls: TLSSource | None = None,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._check(address)
        if tls is None:
            raise ConfigurationError(
                "quic:// needs a TLSConfig with a certificate to listen (QUIC is always TLS 1.3;"
                " TLSConfig.dev() makes one for development)"
            )
        credentials = credentials_for(tls)
        server_configuration(credentials.material, idle_timeout=self.idle_timeout)  # fail now
        try:
            infos = await trio.socket.getaddrinfo(
                address.host, address.port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
            )
            family, _, _, _, sockaddr = infos[0]
            endpoint = self.network(family, bind=sockaddr)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {address.url}: {exc}") from exc
        try:
            bound = address.with_port(endpoint.local_address[1]).url
            server = _Server(self, endpoint, credentials, handler)
            async with trio.open_nursery() as nursery:
                log.debug("listening on %s", bound)
                task_status.started(bound)
                await server.receive_loop(nursery)
        finally:
            endpoint.close()

    def _check(self, address: Address) -> None:
        if address.scheme != self.scheme:
            raise ConfigurationError(f"{self!r} cannot handle {address.url}")


async def pump(session: QuicSession, endpoint: Endpoint) -> None:
    """A client connection's own receive loop and timer, until it ends.

    Anything the network throws ends this connection only (the session
    records why); it never escapes, because this may run as a system task.
    """
    try:
        with session.pump_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(session.run_timer)
                while True:
                    batch = endpoint.receive_nowait()
                    if not batch:
                        await endpoint.wait_readable()
                        continue
                    for data, addr in batch:
                        session.datagram_received(data, addr)
                    session.transmit()
                    if len(batch) == BATCH:
                        await trio.lowlevel.checkpoint()  # more is waiting: stay fair
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
        endpoint.close()


class _Server:
    """One listening socket: routing, version negotiation, retry, accepting."""

    def __init__(
        self,
        transport: QuicTransport,
        endpoint: Endpoint,
        credentials: TLSCredentials,
        handler: Handler,
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.credentials = credentials
        self._material: Material | None = None
        self.config: QuicConfiguration
        self.client_tls: TLSConfig | None
        self._refresh()
        self.handler = handler
        self.sessions: dict[bytes, QuicSession] = {}
        self.retry = QuicRetryTokenHandler() if transport.retry else None

    def _refresh(self) -> None:
        """Follow a reload of the credentials: new connections get the new
        certificates (a configuration is per connection in aioquic, so live
        ones keep theirs)."""
        material = self.credentials.material
        if material is not self._material:
            idle = self.transport.idle_timeout
            self.config = server_configuration(material, idle_timeout=idle)
            self.client_tls = material.config if wants_client_cert(material.config) else None
            self._material = material

    def route(self, cid: bytes, session: QuicSession | None) -> None:
        """Session callback: ``cid`` now routes to ``session`` (None: retired;
        an empty cid: the session ended, forget all its ids)."""
        if not cid and session is not None:
            for key in [k for k, s in self.sessions.items() if s is session]:
                del self.sessions[key]
        elif session is None:
            self.sessions.pop(cid, None)
        else:
            self.sessions[cid] = session

    async def receive_loop(self, nursery: trio.Nursery) -> None:
        endpoint = self.endpoint
        while True:
            batch = endpoint.receive_nowait()
            if not batch:
                await endpoint.wait_readable()
                continue
            touched: dict[QuicSession, None] = {}  # ordered: answer in arrival order
            for data, addr in batch:
                session = self._session_for(data, addr, nursery)
                if session is not None:
                    session.datagram_received(data, addr)
                    touched[session] = None
            for session in touched:
                session.transmit()
            if len(batch) == BATCH:
                await trio.lowlevel.checkpoint()  # more is waiting: stay fair

    def _session_for(
        self, data: bytes, addr: NetworkAddress, nursery: trio.Nursery
    ) -> QuicSession | None:
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self.config.connection_id_length
            )
        except ValueError:
            return None  # not QUIC: garbage is dropped without a reply
        session = self.sessions.get(header.destination_cid)
        if session is not None:
            return session
        versions = self.config.supported_versions
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in versions
        ):
            reply = encode_quic_version_negotiation(
                source_cid=header.destination_cid,
                destination_cid=header.source_cid,
                supported_versions=versions,
            )
            self.endpoint.send([(reply, addr)])
            return None
        # Only a full-size Initial may create state (RFC 9000 §14.1: the
        # padding limits amplification from spoofed sources).
        if header.packet_type != QuicPacketType.INITIAL or len(data) < SMALLEST_MAX_DATAGRAM_SIZE:
            return None
        original_cid = header.destination_cid
        retry_cid: bytes | None = None
        if self.retry is not None:
            if not header.token:
                source_cid = os.urandom(8)
                token = self.retry.create_token(
                    address=addr,
                    original_destination_connection_id=header.destination_cid,
                    retry_source_connection_id=source_cid,
                    now=trio.current_time(),
                )
                assert header.version is not None  # an Initial always has one
                reply = encode_quic_retry(
                    version=header.version,
                    source_cid=source_cid,
                    destination_cid=header.source_cid,
                    original_destination_cid=header.destination_cid,
                    retry_token=token,
                )
                self.endpoint.send([(reply, addr)])
                return None
            try:
                original_cid = self.retry.validate_token(
                    address=addr,
                    destination_cid=header.destination_cid,
                    token=header.token,
                    now=trio.current_time(),
                )
            except ValueError as exc:
                log.info("quic: dropped an Initial from %s with a bad retry token: %s", addr, exc)
                return None
            retry_cid = header.destination_cid
        self._refresh()
        kind = MutualTLSConnection if self.client_tls is not None else ReorderTolerantConnection
        quic = kind(
            configuration=self.config,
            original_destination_connection_id=original_cid,
            retry_source_connection_id=retry_cid,
        )
        peer = Address(self.transport.scheme, str(addr[0]), int(addr[1])).url
        session = QuicSession(quic, self.endpoint, peer, tls=self.client_tls, route=self.route)
        self.sessions[header.destination_cid] = session
        self.sessions[quic.host_cid] = session
        nursery.start_soon(session.run_timer, name=f"quic timer {peer}")
        nursery.start_soon(self._connection, session, name=f"quic connection {peer}")
        return session

    async def _connection(self, session: QuicSession) -> None:
        """One accepted connection, from handshake to close; only
        cancellation escapes (any error ends this connection alone)."""
        stream: QuicStream | None = None
        try:
            with trio.move_on_after(self.transport.handshake_timeout) as scope:
                await session.handshake_done.wait()
                if session.error is None:
                    stream = await session.accept_main()
            if session.error is not None:
                raise session.error
            if scope.cancelled_caught or stream is None:
                session.close_with(0, "no handshake and main stream in time")
                session.transmit()
                raise HandshakeFailed(
                    f"QUIC handshake with {session.peer}: not done within "
                    f"{self.transport.handshake_timeout}s"
                )
            await self.handler(stream)
        except TransportError as exc:
            log.warning("connection from %s closed: %s", session.peer, exc)
        except Exception:
            log.exception("connection handler for %s failed", session.peer)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                if stream is not None:
                    await stream.aclose()
                else:
                    await session.aclose(0)
