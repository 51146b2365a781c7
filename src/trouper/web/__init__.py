"""trouper.web: the node's web gateway (its own HTTP/1.1 server on trio, or hypercorn).

``start_gateway(node, WebGateway(...))`` serves typed HTTP routes
(``Routes``, ``GatewayHandle.route``) through a middleware chain (request
id, access log, ``CORS``, ``RateLimit``, ``JWTAuth``), ``/openapi.json``,
``/healthz``, ``/readyz``, static files and a WebSocket endpoint whose connections are supervised
``WebSocketSession`` actors under ``/system/web``; with ``peers_path``, other
nodes can connect through the same port (``ws://host:port/peers_path``).
``send_text``/``send_bytes`` queue one frame on many sessions (a broadcast)
without waking their actors. Needs the ``web`` extra (``pip install
trouper[web]``: hypercorn, httptools, PyJWT). See docs/web.md.
"""

from ._auth import JWTAuth as JWTAuth
from ._auth import claims_of as claims_of
from ._config import WebGateway as WebGateway
from ._connection import WebSocketConnection as WebSocketConnection
from ._fanout import FanOut as FanOut
from ._fanout import send_bytes as send_bytes
from ._fanout import send_text as send_text
from ._gateway import GatewayHandle as GatewayHandle
from ._gateway import open_gateway as open_gateway
from ._gateway import start_gateway as start_gateway
from ._h1 import Request as Request
from ._h1 import Response as Response
from ._middleware import CORS as CORS
from ._ratelimit import RateLimit as RateLimit
from ._routes import Route as Route
from ._routes import Routes as Routes
from ._session import SendBytes as SendBytes
from ._session import SendText as SendText
from ._session import WebSocketSession as WebSocketSession

__all__ = [
    "CORS",
    "FanOut",
    "GatewayHandle",
    "JWTAuth",
    "RateLimit",
    "Request",
    "Response",
    "Route",
    "Routes",
    "SendBytes",
    "SendText",
    "WebGateway",
    "WebSocketConnection",
    "WebSocketSession",
    "claims_of",
    "open_gateway",
    "send_bytes",
    "send_text",
    "start_gateway",
]
