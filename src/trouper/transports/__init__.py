"""The Trio glue: byte streams to other nodes, chosen by URL scheme.

``parse_address(url)`` gives an ``Address``; ``get_transport(address.scheme)``
gives the ``Transport`` that can ``connect`` to it or ``serve`` on it. ``tcp``
and ``tls`` are registered on import, ``quic`` and ``ws``/``wss`` too when
their extras are installed; other schemes plug in through
``register_transport``. Errors leave this package as ``TransportError``
subclasses (see ``map_exceptions``) or ``ConfigurationError``.
"""

from ._address import Address as Address
from ._address import parse_address as parse_address
from ._mapping import map_exceptions as map_exceptions
from ._registry import Handler as Handler
from ._registry import LaneStream as LaneStream
from ._registry import Transport as Transport
from ._registry import get_transport as get_transport
from ._registry import register_transport as register_transport
from ._tcp import TcpTransport as TcpTransport
from ._tls import ALPN_PROTOCOL as ALPN_PROTOCOL
from ._tls import TLSConfig as TLSConfig
from ._tls_transport import TlsTransport as TlsTransport

__all__ = [
    "ALPN_PROTOCOL",
    "Address",
    "Handler",
    "LaneStream",
    "TLSConfig",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "get_transport",
    "map_exceptions",
    "parse_address",
    "register_transport",
]

register_transport(TcpTransport())
register_transport(TlsTransport())

try:  # quic:// needs the ``quic`` extra (aioquic)
    from ._quic import QuicTransport as QuicTransport
except ImportError:  # pragma: no cover - depends on the installation
    pass
else:
    register_transport(QuicTransport())
    __all__ += ["QuicTransport"]

try:  # ws:// and wss:// need the ``ws`` extra (trio-websocket)
    from ._ws import WssTransport as WssTransport
    from ._ws import WsTransport as WsTransport
except ImportError:  # pragma: no cover - depends on the installation
    pass
else:
    register_transport(WsTransport())
    register_transport(WssTransport())
    __all__ += ["WsTransport", "WssTransport"]
