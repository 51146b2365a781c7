"""A UDP socket as QUIC needs it: synchronous sends, batched receives.

Sends are plain non-blocking syscalls, made from whichever task has
datagrams to send. That serialises them by construction (nothing awaits in
the middle of a send, so two tasks can never be inside one at the same time,
which on a trio socket raises ``BusyResourceError``), keeps datagrams in the
order aioquic produced them, and costs no scheduler pass per packet. A full
socket buffer drops the datagram: to QUIC that is loss, which it repairs.

Receives drain what the kernel holds (up to ``BATCH``) per wake-up, so a
burst is processed, and answered, with one transmit per connection.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Protocol

import trio

__all__ = ["BATCH", "Endpoint", "OpenEndpoint", "UdpEndpoint", "open_udp_endpoint"]

log = logging.getLogger("trouper.transports")

BATCH = 64
_MAX_DATAGRAM = 65536
# A bigger receive buffer absorbs a burst of a fast sender while the loop is
# busy elsewhere; the kernel caps it at net.core.rmem_max.
_RCVBUF = 4 * 1024 * 1024

Datagram = tuple[bytes, Any]


class Endpoint(Protocol):
    """What a QUIC connection or listener needs from its datagram socket."""

    connected: bool

    @property
    def local_address(self) -> Any: ...

    def send(self, datagrams: list[tuple[bytes, Any]]) -> None: ...

    def receive_nowait(self) -> list[Datagram]: ...

    async def wait_readable(self) -> None: ...

    def close(self) -> None: ...


class UdpEndpoint:
    """One UDP socket; ``connected`` sockets talk to one peer (a client)."""

    def __init__(self, sock: socket.socket, *, connected: bool) -> None:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        except OSError:  # pragma: no cover - only a sizing hint
            pass
        self.sock = sock
        self.connected = connected
        self.closed = False

    def send(self, datagrams: list[tuple[bytes, Any]]) -> None:
        """Send now; ``OSError`` only for a connected socket (its peer is
        unreachable), never because one of a server's clients is."""
        sock = self.sock
        for data, addr in datagrams:
            try:
                if self.connected:
                    sock.send(data)
                else:
                    sock.sendto(data, addr)
            except BlockingIOError:
                pass  # the buffer is full: QUIC treats it as loss and resends
            except OSError as exc:
                if self.connected:
                    raise
                log.debug("quic: sendto %s failed: %s", addr, exc)

    def receive_nowait(self) -> list[Datagram]:
        """What the kernel holds now (at most ``BATCH``), without waiting.

        Raises ``OSError`` for an error the kernel reports on a connected
        socket, such as a refused connection (an ICMP port unreachable).
        """
        batch: list[Datagram] = []
        sock = self.sock
        try:
            while len(batch) < BATCH:
                batch.append(sock.recvfrom(_MAX_DATAGRAM))
        except BlockingIOError:
            pass
        except OSError:
            if self.connected and not batch:
                raise
            # An unconnected socket may report an ICMP error meant for an
            # earlier reply to some client: nothing to do with the others.
        return batch

    @property
    def local_address(self) -> Any:
        return self.sock.getsockname()

    async def wait_readable(self) -> None:
        await trio.lowlevel.wait_readable(self.sock)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


class OpenEndpoint(Protocol):
    """How the QUIC transport gets its endpoints (see ``QuicTransport``)."""

    def __call__(self, family: int, *, bind: Any = None, connect: Any = None) -> Endpoint: ...


def open_udp_endpoint(family: int, *, bind: Any = None, connect: Any = None) -> Endpoint:
    """A real UDP socket, bound and/or connected (neither blocks for UDP)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if bind is not None:
            sock.bind(bind)
        if connect is not None:
            sock.connect(connect)
    except BaseException:
        sock.close()
        raise
    return UdpEndpoint(sock, connected=connect is not None)
