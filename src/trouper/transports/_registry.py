"""What a transport is, and the registry the runtime asks by URL scheme.

The runtime never imports a transport module: it parses a URL and asks
``get_transport(address.scheme)``. That keeps optional transports (QUIC via
aioquic, WebSocket) optional, and lets tests swap in a fake network by
registering a transport under an existing scheme.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import trio

from trouper._errors import ConfigurationError

from ._address import Address
from ._credentials import TLSSource

__all__ = ["Handler", "LaneStream", "Transport", "get_transport", "register_transport"]

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


@runtime_checkable
class Transport(Protocol):
    """Opens and accepts byte streams for one URL scheme.

    A transport only moves bytes: framing, the trouper handshake and
    everything above live in ``trouper.protocols`` and the runtime.
    """

    scheme: str

    async def connect(
        self, address: Address, *, tls: TLSSource | None, nursery: trio.Nursery | None = None
    ) -> trio.abc.Stream:
        """Open a stream to ``address``; any secure-channel handshake is done.

        A transport whose connections need a background task (QUIC's receive
        loop and timers, WebSocket's reader) runs it in ``nursery`` until the
        stream is closed; without one it uses a Trio system task. ``tls`` is
        a ``TLSConfig`` or the ``TLSCredentials`` of a node (which a reload
        swaps: a transport asks them per dial, and per accepted connection). Raises only
        ``TransportError`` subclasses (``ConnectionLost``, ``HandshakeFailed``)
        or ``ConfigurationError``.
        """
        ...

    async def serve(
        self,
        address: Address,
        handler: Handler,
        *,
        tls: TLSSource | None,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``address`` until cancelled, running ``handler`` per stream.

        Calls ``task_status.started(url)`` with the URL actually bound (port 0
        resolved). The stream is closed when its handler returns; a failing
        handler or peer is logged and never stops the listener.
        """
        ...


@runtime_checkable
class LaneStream(Protocol):
    """A stream whose connection can carry more one-way streams ("lanes").

    QUIC's main stream is one. The runtime sends each bulk ``stream()``
    transfer on a lane of its own, so a slow or lossy transfer never holds up
    asks and heartbeats on the main stream. Transports without independent
    streams (TCP, TLS, WebSocket) simply do not offer this.
    """

    async def open_lane(self) -> trio.abc.SendStream: ...

    async def accept_lane(self) -> trio.abc.ReceiveStream: ...


_TRANSPORTS: dict[str, Transport] = {}
#: The optional transports, by scheme: the extra that installs each.
_EXTRAS = {"quic": "quic", "ws": "ws", "wss": "ws"}
#: Transports imported on first use, so that ``import trouper`` loads neither
#: aioquic nor trio-websocket: scheme -> (module, class).
LAZY: dict[str, tuple[str, str]] = {
    "quic": ("trouper.transports._quic", "QuicTransport"),
    "ws": ("trouper.transports._ws", "WsTransport"),
    "wss": ("trouper.transports._ws", "WssTransport"),
}


def load_lazy(scheme: str) -> Transport | None:
    """Import and register the built-in transport for ``scheme``, if there is
    one and its extra is installed; None otherwise."""
    entry = LAZY.get(scheme)
    if entry is None:
        return None
    module_name, class_name = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # the extra is not installed
        return None
    transport: Transport = getattr(module, class_name)()
    _TRANSPORTS.setdefault(scheme, transport)
    return _TRANSPORTS[scheme]


def register_transport(transport: Transport) -> Transport | None:
    """Make ``transport`` the one used for its scheme; returns the one it replaces.

    Replacing is allowed on purpose (a test's fake network registers over
    ``tcp``); keep the returned transport to put it back.
    """
    scheme = getattr(transport, "scheme", None)
    if not isinstance(transport, Transport) or not isinstance(scheme, str) or not scheme:
        raise ConfigurationError(f"{transport!r} is not a transport (needs scheme/connect/serve)")
    previous = _TRANSPORTS.get(scheme.lower())
    _TRANSPORTS[scheme.lower()] = transport
    return previous


def get_transport(scheme: str) -> Transport:
    """The transport registered for ``scheme`` (``"tcp"``, ``"tls"``, ...)."""
    scheme = scheme.lower()
    transport = _TRANSPORTS.get(scheme) or load_lazy(scheme)
    if transport is not None:
        return transport
    else:
        known = ", ".join(sorted({*_TRANSPORTS, *LAZY})) or "none"
        extra = _EXTRAS.get(scheme.lower())
        hint = ""
        if extra is not None:
            hint = f" ({scheme}:// needs the {extra!r} extra: pip install 'trouper[{extra}]')"
        raise ConfigurationError(
            f"no transport registered for {scheme!r}{hint}; known schemes: {known}"
        ) from None
