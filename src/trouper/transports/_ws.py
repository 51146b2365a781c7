"""ws:// and wss:// — trouper's byte stream as binary WebSocket messages.

For networks that only let HTTP through (proxies, ingress controllers,
browsers' neighbourhoods). Built on trio-websocket, an optional extra
(``pip install trouper[ws]``). The URL's path is part of the address: a
server accepts upgrades on that path only (any other gets HTTP 404), and a
client asks for it. wss:// is TLS exactly like tls:// (the node's
``TLSConfig``, mutual when it has a CA, ALPN ``trouper/1``), with the
WebSocket on top; the TLS handshake is done eagerly, so a refused client
learns it at ``connect`` or on its first read as ``HandshakeFailed``.

The streams these transports return are ``WebSocketStream``s (see
``_ws_stream``); each connection's reader task runs in the nursery given to
``connect`` or in a system task, and ends when the stream is closed.
"""

from __future__ import annotations

from functools import partial

import trio
import trio_websocket as tws

from trouper._errors import ConfigurationError, HandshakeFailed

from ._address import Address
from ._binding import server_certificate, set_server_certificate
from ._credentials import TLSSource
from ._registry import Handler
from ._tcp import TcpTransport, _peer_name
from ._tls_transport import TlsTransport
from ._ws_stream import _RECEIVE_BUFFER, Setup, WebSocketStream, open_websocket_stream

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "WebSocketStream", "WsTransport", "WssTransport"]

#: The runtime's largest frame (16 MiB) plus room for the batch around it.
DEFAULT_MAX_MESSAGE_SIZE = 17 * 1024 * 1024
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


def _socket_stream(stream: trio.abc.Stream) -> trio.SocketStream | None:
    while not isinstance(stream, trio.SocketStream):
        inner = getattr(stream, "transport_stream", None)
        if not isinstance(inner, trio.abc.Stream):
            return None
        stream = inner
    return stream


class WsTransport(TcpTransport):
    """WebSocket over plain TCP.

    ``max_message_size`` bounds a message either way: larger messages from
    the peer close the connection (1009, ``FrameTooLarge``), and larger
    writes are split. Both ends must allow the runtime's largest frame
    (``max_frame_size``, 16 MiB by default, plus a little): the default is
    17 MiB. ``handshake_timeout`` bounds the TLS and WebSocket handshakes,
    ``close_timeout`` the closing handshake of a graceful ``aclose``.
    """

    scheme: str = "ws"

    def __init__(
        self,
        handshake_timeout: float = 10.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = 5.0,
    ) -> None:
        for name, value in (
            ("handshake_timeout", handshake_timeout),
            ("max_message_size", max_message_size),
            ("close_timeout", close_timeout),
        ):
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0, got {value}")
        self.handshake_timeout = handshake_timeout
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(handshake_timeout={self.handshake_timeout}, "
            f"max_message_size={self.max_message_size}, close_timeout={self.close_timeout})"
        )

    async def connect(
        self,
        address: Address,
        *,
        tls: TLSSource | None = None,
        nursery: trio.Nursery | None = None,
    ) -> trio.abc.Stream:
        """Dial ``address`` and upgrade to a WebSocket on its path.

        The connection's reader task runs in ``nursery`` if given, else in a
        system task; either way it ends when the returned stream is closed.
        """
        secured = await super().connect(address, tls=tls)  # wss: the TLS handshake too
        host = f"[{address.host}]" if ":" in address.host else address.host
        if address.port != _DEFAULT_PORTS.get(address.scheme):
            host = f"{host}:{address.port}"

        async def setup(background: trio.Nursery, ws: trio.abc.Stream) -> tws.WebSocketConnection:
            return await tws.wrap_client_stream(
                background,
                ws,  # type: ignore[arg-type]  # any trio Stream works
                host,
                address.path,
                max_message_size=self.max_message_size,
                receive_buffer_size=_RECEIVE_BUFFER,
            )

        return await self._open(secured, setup, address.url, nursery)

    async def serve(
        self,
        address: Address,
        handler: Handler,
        *,
        tls: TLSSource | None = None,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``address``; upgrades on its path run ``handler``.

        The bound URL keeps the path (``ws://127.0.0.1:PORT/path``).
        """
        self._check(address)
        upgrade = partial(self._upgrade, address.path, handler)
        await super().serve(address, upgrade, tls=tls, task_status=task_status)

    async def _upgrade(self, path: str, handler: Handler, stream: trio.abc.Stream) -> None:
        """One accepted (and, for wss, TLS-secured) connection: the WebSocket
        handshake, then ``handler``. Errors are logged by the accept loop."""
        sock = _socket_stream(stream)
        peer = f"{self.scheme}://<unknown peer>" if sock is None else _peer_name(self.scheme, sock)

        async def setup(background: trio.Nursery, ws: trio.abc.Stream) -> tws.WebSocketConnection:
            request = await tws.wrap_server_stream(
                background,
                ws,
                max_message_size=self.max_message_size,
                receive_buffer_size=_RECEIVE_BUFFER,
            )
            target = request.path.partition("?")[0]
            if target != path:
                await request.reject(404, body=b"not found\n")
                raise HandshakeFailed(
                    f"{peer} asked for WebSocket path {target!r}; this listener serves {path!r}"
                )
            return await request.accept()

        ws = await self._open(stream, setup, peer, None)
        try:
            await handler(ws)
        finally:
            await ws.aclose()

    async def _open(
        self, stream: trio.abc.Stream, setup: Setup, peer: str, nursery: trio.Nursery | None
    ) -> WebSocketStream:
        ws = await open_websocket_stream(
            stream,
            setup,
            peer=peer,
            tls=self.scheme == "wss",
            handshake_timeout=self.handshake_timeout,
            max_message_size=self.max_message_size,
            close_timeout=self.close_timeout,
            nursery=nursery,
        )
        certificate = server_certificate(stream)  # wss: what the TLS under it was made with
        if certificate is not None:
            set_server_certificate(ws, certificate)
        return ws


class WssTransport(WsTransport, TlsTransport):
    """WebSocket over TLS: ``TlsTransport``'s TLS (contexts cached per
    config, eager handshake, alerts for refused clients), then a WebSocket.

    Without a ``TLSConfig``, ``connect`` trusts the system CA store, and
    ``serve`` refuses (a server needs a certificate).
    """

    scheme: str = "wss"

    def __init__(
        self,
        handshake_timeout: float = 10.0,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        close_timeout: float = 5.0,
    ) -> None:
        WsTransport.__init__(self, handshake_timeout, max_message_size, close_timeout)
        TlsTransport.__init__(self, handshake_timeout)
