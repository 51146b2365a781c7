"""tls:// — TLS over TCP through ``trio.SSLStream``.

The handshake is done eagerly on both sides, under a timeout: a client learns
at connect time whether the peer is trusted, and a server never hands an
unauthenticated stream to the runtime nor lets a silent peer hold a slot.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import trio

from trouper._errors import ConfigurationError, HandshakeFailed

from ._address import Address
from ._credentials import TLSSource, credentials_for
from ._mapping import map_exceptions
from ._tcp import TcpTransport
from ._tls import ALPN_PROTOCOL

__all__ = ["TlsTransport"]

# How long, and how much input, a rejected client gets to read our alert.
_LINGER_TIMEOUT = 1.0
_LINGER_BYTES = 65536


class TlsTransport(TcpTransport):
    """TLS 1.2+ over TCP, mutual when the config has a CA (see ``TLSConfig``).

    Without a ``TLSConfig``, ``connect`` trusts the system CA store, and
    ``serve`` refuses (a server needs a certificate).
    """

    scheme: str = "tls"

    def __init__(self, handshake_timeout: float = 10.0) -> None:
        if not handshake_timeout > 0:
            raise ConfigurationError(f"handshake_timeout must be > 0, got {handshake_timeout}")
        self.handshake_timeout = handshake_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(handshake_timeout={self.handshake_timeout})"

    def _client_context(self, tls: TLSSource | None) -> ssl.SSLContext:
        # Built once per config (it reads certificate files) and kept by the
        # credentials, which a node reloads to rotate its certificates.
        return credentials_for(tls).material.client

    def _server_contexts(self, tls: TLSSource | None) -> Callable[[], ssl.SSLContext]:
        if tls is None:
            raise ConfigurationError(
                f"{self.scheme}:// needs a TLSConfig with a certificate to listen"
            )
        credentials = credentials_for(tls)
        credentials.server_context()  # no certificate: fail now, not per connection
        return credentials.server_context

    async def _secure_client(
        self, stream: trio.SocketStream, address: Address, context: ssl.SSLContext | None
    ) -> trio.abc.Stream:
        assert context is not None  # _client_context always builds one
        ssl_stream = trio.SSLStream(stream, context, server_hostname=address.host)
        try:
            await self._handshake(ssl_stream, address.url)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return ssl_stream

    async def _secure_server(
        self, stream: trio.SocketStream, peer: str, context: ssl.SSLContext | None
    ) -> trio.abc.Stream:
        assert context is not None  # _server_context always builds one
        ssl_stream = trio.SSLStream(stream, context, server_side=True)
        try:
            await self._handshake(ssl_stream, peer)
        except HandshakeFailed as exc:
            if not isinstance(exc.__cause__, trio.TooSlowError):
                await _send_alert(ssl_stream, stream)
            raise
        return ssl_stream

    async def _handshake(self, ssl_stream: trio.SSLStream[trio.SocketStream], peer: str) -> None:
        try:
            with trio.fail_after(self.handshake_timeout), map_exceptions(peer, handshake=True):
                await ssl_stream.do_handshake()
        except trio.TooSlowError as exc:
            raise HandshakeFailed(
                f"TLS handshake with {peer}: no answer within {self.handshake_timeout}s"
            ) from exc
        # Both ends offer only ALPN_PROTOCOL, so anything else is a peer that
        # is not a trouper node of this wire version.
        selected: str | None = ssl_stream.selected_alpn_protocol()
        if selected != ALPN_PROTOCOL:
            raise HandshakeFailed(
                f"TLS handshake with {peer}: peer did not negotiate ALPN {ALPN_PROTOCOL!r}"
                f" (got {selected!r})"
            )


async def _send_alert(
    ssl_stream: trio.SSLStream[trio.SocketStream], raw: trio.SocketStream
) -> None:
    """Tell a rejected client why, instead of just hanging up.

    Under TLS 1.3 the client finishes its handshake *before* the server
    checks the client certificate, so the client learns of a rejection only
    from the alert the server sends. trio's SSLStream raises as soon as
    OpenSSL fails, leaving that alert unsent in its outgoing buffer: send it,
    then close our side and drain what the client already sent, because
    closing with unread input makes the kernel send a RST, which would
    destroy the alert before the client reads it. Best effort, and bounded:
    a peer that keeps sending cannot hold the slot for long.
    """
    outgoing = getattr(ssl_stream, "_outgoing", None)  # trio internals: degrade if gone
    with trio.move_on_after(_LINGER_TIMEOUT):
        try:
            if isinstance(outgoing, ssl.MemoryBIO) and outgoing.pending:
                await raw.send_all(outgoing.read())
            await raw.send_eof()
            drained = 0
            while drained < _LINGER_BYTES and (chunk := await raw.receive_some(_LINGER_BYTES)):
                drained += len(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
