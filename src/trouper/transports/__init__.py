"""The Trio glue: byte streams to other nodes, chosen by URL scheme.

``parse_address(url)`` gives an ``Address``; ``get_transport(address.scheme)``
gives the ``Transport`` that can ``connect`` to it or ``serve`` on it. ``tcp``
and ``tls`` are registered on import; ``quic`` and ``ws``/``wss`` are imported
the first time they are asked for (when their extras are installed), so
``import trouper`` loads neither aioquic nor trio-websocket; other schemes
plug in through ``register_transport``. Errors leave this package as ``TransportError``
subclasses (see ``map_exceptions``) or ``ConfigurationError``.
"""

import importlib

from trouper._errors import SendTimeout as SendTimeout

from ._address import Address as Address
from ._address import parse_address as parse_address
from ._binding import channel_binding as channel_binding
from ._binding import server_certificate as server_certificate
from ._broadcast import broadcast as broadcast
from ._conn_pool import ConnectionPool as ConnectionPool
from ._connect import connect as connect
from ._credentials import TLSCredentials as TLSCredentials
from ._mapping import map_exceptions as map_exceptions
from ._registry import LAZY
from ._registry import Handler as Handler
from ._registry import LaneStream as LaneStream
from ._registry import Transport as Transport
from ._registry import get_transport as get_transport
from ._registry import register_transport as register_transport
from ._server import MessageServer as MessageServer
from ._server import ServerStatistics as ServerStatistics
from ._server import graceful_shutdown as graceful_shutdown
from ._server import serve as serve
from ._session import MessageSession as MessageSession
from ._session import SessionStatistics as SessionStatistics
from ._tcp import TcpTransport as TcpTransport
from ._tls import ALPN_PROTOCOL as ALPN_PROTOCOL
from ._tls import TLSConfig as TLSConfig
from ._tls_transport import TlsTransport as TlsTransport

__all__ = [
    "ALPN_PROTOCOL",
    "Address",
    "ConnectionPool",
    "Handler",
    "LaneStream",
    "MessageServer",
    "MessageSession",
    "SendTimeout",
    "ServerStatistics",
    "SessionStatistics",
    "TLSConfig",
    "TLSCredentials",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "broadcast",
    "channel_binding",
    "connect",
    "get_transport",
    "graceful_shutdown",
    "map_exceptions",
    "parse_address",
    "register_transport",
    "serve",
    "server_certificate",
]

register_transport(TcpTransport())
register_transport(TlsTransport())

__all__ += ["QuicTransport", "WsTransport", "WssTransport"]


def __getattr__(name: str) -> object:
    # The optional transports are imported on first use (their extras load
    # aioquic and trio-websocket), here as in get_transport.
    for module_name, class_name in LAZY.values():
        if class_name == name:
            return getattr(importlib.import_module(module_name), class_name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
