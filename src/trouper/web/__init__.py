"""trouper.web: the node's web gateway (hypercorn + ASGI, no framework).

``start_gateway(node, WebGateway(...))`` serves ``/healthz``, ``/readyz``,
static files and a WebSocket endpoint whose connections are supervised
``WebSocketSession`` actors under ``/system/web``; with ``peers_path``, other
nodes can connect through the same port (``ws://host:port/peers_path``).
``send_text``/``send_bytes`` queue one frame on many sessions (a broadcast)
without waking their actors. Needs the ``web`` extra (``pip install
trouper[web]``: hypercorn).
"""

from ._config import WebGateway as WebGateway
from ._connection import WebSocketConnection as WebSocketConnection
from ._fanout import FanOut as FanOut
from ._fanout import send_bytes as send_bytes
from ._fanout import send_text as send_text
from ._gateway import GatewayHandle as GatewayHandle
from ._gateway import open_gateway as open_gateway
from ._gateway import start_gateway as start_gateway
from ._session import SendBytes as SendBytes
from ._session import SendText as SendText
from ._session import WebSocketSession as WebSocketSession

__all__ = [
    "FanOut",
    "GatewayHandle",
    "SendBytes",
    "SendText",
    "WebGateway",
    "WebSocketConnection",
    "WebSocketSession",
    "open_gateway",
    "send_bytes",
    "send_text",
    "start_gateway",
]
