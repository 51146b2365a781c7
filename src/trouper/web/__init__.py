"""trouper.web: the node's web gateway (hypercorn + ASGI, no framework).

``start_gateway(node, WebGateway(...))`` serves ``/healthz``, ``/readyz``,
static files and a WebSocket endpoint whose connections are supervised
``WebSocketSession`` actors under ``/system/web``; with ``peers_path``, other
nodes can connect through the same port (``ws://host:port/peers_path``). Needs the ``web`` extra
(``pip install trouper[web]``: hypercorn).
"""

from ._config import WebGateway as WebGateway
from ._connection import WebSocketConnection as WebSocketConnection
from ._gateway import GatewayHandle as GatewayHandle
from ._gateway import open_gateway as open_gateway
from ._gateway import start_gateway as start_gateway
from ._session import WebSocketSession as WebSocketSession

__all__ = [
    "GatewayHandle",
    "WebGateway",
    "WebSocketConnection",
    "WebSocketSession",
    "open_gateway",
    "start_gateway",
]
