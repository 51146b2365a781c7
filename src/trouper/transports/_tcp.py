"""tcp:// — plain TCP streams, and the listening loop every TCP-based
transport shares (tls:// adds its handshake through two hooks).
"""

from __future__ import annotations

import errno
import logging
import ssl
from collections.abc import Callable

import trio

from trouper._errors import ConfigurationError, TransportError

from ._address import Address
from ._credentials import TLSSource
from ._mapping import map_exceptions
from ._registry import Handler

__all__ = ["TcpTransport"]

logger = logging.getLogger("trouper.transports")

# accept() failures that mean "out of file descriptors or memory right now":
# the listener is fine, so wait a little instead of dying (as trio does).
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_CAPACITY_SLEEP = 0.1
# A close sends at most a TLS close_notify; a peer that stops reading must
# not pin the connection task, and a cancelled aclose still closes the socket.
_CLOSE_TIMEOUT = 5.0


def _nodelay(stream: trio.SocketStream) -> None:
    # Frames are small and latency matters more than packet count; trio turns
    # this on already, but the runtime's latency depends on it, so say it.
    stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)


def _port_of(listener: trio.SocketListener) -> int:
    port: int = listener.socket.getsockname()[1]
    return port


async def _open_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Bind every address ``host`` resolves to, all on ONE port.

    With port 0 and a name like ``localhost`` (127.0.0.1 and ::1), trio would
    give each listener its own random port, and only one can be advertised:
    rebind the others on the first one's port (skipping any that cannot).
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    if port != 0 or len(listeners) < 2:
        return listeners
    chosen, result = _port_of(listeners[0]), [listeners[0]]
    for extra in listeners[1:]:
        sock_host: str = extra.socket.getsockname()[0]
        await extra.aclose()
        try:
            result.extend(await trio.open_tcp_listeners(chosen, host=sock_host))
        except OSError as exc:
            logger.debug("not listening on %s:%s too: %s", sock_host, chosen, exc)
    return result


def _no_context() -> None:
    return None


def _peer_name(scheme: str, stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:  # the peer may be gone already
        return f"{scheme}://<unknown peer>"
    return Address(scheme, host, port).url


class TcpTransport:
    """Plain TCP. ``tls`` is accepted and ignored: use ``tls://`` for TLS."""

    scheme: str = "tcp"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    async def connect(
        self,
        address: Address,
        *,
        tls: TLSSource | None = None,
        nursery: trio.Nursery | None = None,
    ) -> trio.abc.Stream:
        self._check(address)
        # Build the TLS context first: a bad config is reported as such,
        # before touching the network.
        context = self._client_context(tls)
        with map_exceptions(address):
            stream = await trio.open_tcp_stream(address.host, address.port)
        _nodelay(stream)
        return await self._secure_client(stream, address, context)

    async def serve(
        self,
        address: Address,
        handler: Handler,
        *,
        tls: TLSSource | None = None,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        self._check(address)
        contexts = self._server_contexts(tls)
        try:
            listeners = await _open_listeners(address.host, address.port)
        except OSError as exc:  # address in use, not ours, unresolvable...
            raise ConfigurationError(f"cannot listen on {address.url}: {exc}") from exc
        bound = address.with_port(_port_of(listeners[0])).url
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, bound, listener, nursery, handler, contexts)
            logger.debug("listening on %s", bound)
            task_status.started(bound)

    # -- hooks for transports that secure the TCP stream (tls://) ----------

    def _client_context(self, tls: TLSSource | None) -> ssl.SSLContext | None:
        return None

    def _server_contexts(self, tls: TLSSource | None) -> Callable[[], ssl.SSLContext | None]:
        """What gives each accepted connection its context: asked per
        connection, so that a reload of the certificates reaches new ones."""
        return _no_context

    async def _secure_client(
        self, stream: trio.SocketStream, address: Address, context: ssl.SSLContext | None
    ) -> trio.abc.Stream:
        return stream

    async def _secure_server(
        self, stream: trio.SocketStream, peer: str, context: ssl.SSLContext | None
    ) -> trio.abc.Stream:
        return stream

    # -- internals ----------------------------------------------------------

    def _check(self, address: Address) -> None:
        if address.scheme != self.scheme:
            raise ConfigurationError(f"{self!r} cannot handle {address.url}")

    async def _accept_loop(
        self,
        bound: str,
        listener: trio.SocketListener,
        nursery: trio.Nursery,
        handler: Handler,
        contexts: Callable[[], ssl.SSLContext | None],
    ) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _CAPACITY_ERRNOS:
                        raise TransportError(f"listener {bound} failed: {exc}") from exc
                    logger.error("accept on %s: %s; retrying shortly", bound, exc)
                    await trio.sleep(_CAPACITY_SLEEP)
                    continue
                nursery.start_soon(self._connection, stream, handler, contexts())

    async def _connection(
        self, stream: trio.SocketStream, handler: Handler, context: ssl.SSLContext | None
    ) -> None:
        """One accepted connection, from handshake to close.

        Runs beside the accept loop in the listener's nursery, so nothing may
        escape but cancellation (and other BaseExceptions, which must not be
        swallowed): any error ends this connection only.
        """
        peer = _peer_name(self.scheme, stream)
        closing: trio.abc.AsyncResource = stream
        try:
            _nodelay(stream)
            secured = await self._secure_server(stream, peer, context)
            closing = secured
            await handler(secured)
        except TransportError as exc:  # the peer or the network: expected, no traceback
            logger.warning("connection from %s closed: %s", peer, exc)
        except Exception:
            logger.exception("connection handler for %s failed", peer)
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT):
                try:
                    await closing.aclose()
                except Exception as exc:  # closing a broken stream may complain
                    logger.debug("closing %s: %r", peer, exc)
