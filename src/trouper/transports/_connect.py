"""``connect(url)``: the client side of the message API, and the options
every session shares (checked once, where they are given)."""

from __future__ import annotations

import math
from collections.abc import Generator
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from trouper._errors import ConfigurationError, ConnectionLost, TrouperError

from ._address import Address, parse_address
from ._codecs import codec_for
from ._credentials import TLSSource
from ._mapping import map_exceptions
from ._msg_framing import NOOP, check_limit
from ._registry import Transport, get_transport
from ._session import MessageSession, start_session

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SEND_BUFFER",
    "SessionOptions",
    "connect",
    "describe_peer",
    "open_session",
]

#: The largest message a session sends or accepts unless told otherwise.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
#: Bytes a session queues before ``send`` waits (one message always fits).
DEFAULT_SEND_BUFFER = 1024 * 1024


def _positive(name: str, value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigurationError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"{name} must be finite, got {value!r}")


@attrs.frozen
class SessionOptions:
    """The bounds of a session; invalid values raise ``ConfigurationError``."""

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    send_buffer: int = DEFAULT_SEND_BUFFER
    connect_timeout: float = 10.0
    close_timeout: float = 5.0

    def __attrs_post_init__(self) -> None:
        check_limit(self.max_message_size)
        if not isinstance(self.send_buffer, int) or isinstance(self.send_buffer, bool):
            raise ConfigurationError(f"send_buffer must be an int, got {self.send_buffer!r}")
        _positive("send_buffer", self.send_buffer)
        _positive("connect_timeout", self.connect_timeout)
        _positive("close_timeout", self.close_timeout)

    def check_transport(self, transport: Transport) -> None:
        # A WebSocket transport bounds messages itself; a session limit above
        # it would only fail later, as a closed connection.
        limit = getattr(transport, "max_message_size", None)
        if isinstance(limit, int) and self.max_message_size > limit:
            raise ConfigurationError(
                f"max_message_size {self.max_message_size} is larger than the"
                f" {transport.scheme}:// transport allows ({limit})"
            )

    def session(
        self, scheme: str, stream: trio.abc.Stream, peer: str, prefix: str
    ) -> MessageSession:
        return MessageSession(
            codec_for(scheme, stream, self.max_message_size, peer),
            remote_address=peer,
            max_message_size=self.max_message_size,
            send_buffer=self.send_buffer,
            close_timeout=self.close_timeout,
            prefix=prefix,
        )


def describe_peer(scheme: str, stream: trio.abc.Stream) -> str:
    """The URL-like name of the peer at the other end of an accepted stream."""
    current: object = stream
    for _ in range(8):  # wrappers: SSLStream over SocketStream, WebSocket over either
        if isinstance(current, trio.SocketStream):
            try:
                host, port = current.socket.getpeername()[:2]
            except OSError:
                break
            return Address(scheme, host, port).url
        peer = getattr(current, "peer", None) or getattr(
            getattr(current, "session", None), "peer", None
        )
        if isinstance(peer, str):
            return peer
        current = getattr(current, "transport_stream", None)
        if current is None:
            break
    return f"{scheme}://<unknown peer>"


async def open_session(
    url: str, tls: TLSSource | None, options: SessionOptions, nursery: trio.Nursery | None
) -> MessageSession:
    try:
        address = parse_address(url)
        transport = get_transport(address.scheme)
        options.check_transport(transport)
        try:
            with trio.fail_after(options.connect_timeout):
                stream = await transport.connect(address, tls=tls, nursery=nursery)
        except trio.TooSlowError as exc:
            raise ConnectionLost(
                f"no connection to {address.url} within connect_timeout"
                f" ({options.connect_timeout}s)"
            ) from exc
        try:
            if address.scheme == "quic":  # open the stream on the server's side now
                with map_exceptions(address):
                    await stream.send_all(NOOP)
            session = options.session(address.scheme, stream, address.url, "c")
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    except TrouperError as exc:
        if exc.operation is None:
            exc.with_operation("connect")
        if exc.session is None:
            exc.with_session(url)
        raise
    return start_session(session, nursery)


class _Connecting:
    """What ``connect`` returns: await it, or use it with ``async with``."""

    def __init__(
        self, url: str, tls: TLSSource | None, options: SessionOptions, nursery: trio.Nursery | None
    ) -> None:
        self._args = (url, tls, options)
        self._nursery = nursery
        self._stack: AsyncExitStack | None = None
        self._session: MessageSession | None = None

    def __await__(self) -> Generator[Any, None, MessageSession]:
        return open_session(*self._args, self._nursery).__await__()

    async def __aenter__(self) -> MessageSession:
        stack = AsyncExitStack()
        nursery = self._nursery
        if nursery is None:  # the writer (and ws/quic's reader) live in here
            nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            self._session = await open_session(*self._args, nursery)
        except BaseException:
            await stack.aclose()  # no child is left: the error stays ungrouped
            raise
        self._stack = stack
        return self._session

    async def __aexit__(self, *exc_info: Any) -> None:
        # Close first, then leave the nursery with nothing to report: the
        # block's own exception propagates as itself, not in a group.
        assert self._stack is not None and self._session is not None
        stack, self._stack = self._stack, None
        try:
            await self._session.aclose()
        finally:
            await stack.aclose()


def connect(
    url: str,
    *,
    tls: TLSSource | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    send_buffer: int = DEFAULT_SEND_BUFFER,
    connect_timeout: float = 10.0,
    close_timeout: float = 5.0,
    nursery: trio.Nursery | None = None,
) -> _Connecting:
    """Open a ``MessageSession`` to ``url`` (tcp, tls, quic, ws or wss).

    ``async with connect(url) as session:`` runs the session's writer in a
    nursery of its own and closes the session at the end; ``session = await
    connect(url)`` runs it in ``nursery`` (or a Trio system task) until
    ``session.aclose()``. ``tls`` is a ``TLSConfig`` (needed for tls, quic
    and wss). Raises ``ConfigurationError`` for a bad URL or option, and
    ``TransportError`` subclasses (``ConnectionLost``, ``HandshakeFailed``)
    for the network, annotated with operation ``connect`` and the URL.
    """
    options = SessionOptions(max_message_size, send_buffer, connect_timeout, close_timeout)
    return _Connecting(url, tls, options, nursery)
