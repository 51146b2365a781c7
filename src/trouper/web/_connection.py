"""The ASGI side of one WebSocket, shared by the gateway and its session.

Also the gateway's shared state and the session's internal messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from .._errors import TrouperError
from ._web_metrics import WebMetrics

if TYPE_CHECKING:
    from ._config import WebGateway
    from ._wsfast import WsSocket

ASGIEvent = dict[str, Any]
ASGIReceive = Any  # Callable[[], Awaitable[ASGIEvent]]
ASGISend = Any  # Callable[[ASGIEvent], Awaitable[None]]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_ABNORMAL = 1006


class GatewayState:
    """What the gateway's handle, actor, ASGI app and sessions share (across
    restarts of the gateway)."""

    __slots__ = (
        "close_deadline",
        "metrics",
        "node_id",
        "peers",
        "port",
        "ready",
        "remoting",
        "stopping",
        "url",
    )

    def __init__(self, node_id: str, port: int, remoting: Any = None) -> None:
        self.node_id = node_id
        self.port = port
        self.ready = True
        self.stopping = False
        self.url = ""
        #: The node's ``Remoting`` (None without a cookie), for ``peers_path``.
        self.remoting = remoting
        #: The peer connections open through ``peers_path`` (AsgiWebSocketStreams).
        self.peers: set[Any] = set()
        #: While the gateway stops, its sessions share one close_timeout (they
        #: stop one after the other: stuck clients must not add up).
        self.close_deadline: float | None = None
        self.metrics = WebMetrics()

    def shutdown_budget(self, timeout: float) -> float:
        now = trio.current_time()
        if self.close_deadline is None:
            self.close_deadline = now + timeout
        return max(0.0, self.close_deadline - now)


class WebSocketConnection:
    """The ASGI side of one WebSocket, shared by the gateway's ASGI handler
    (which lives as long as the connection) and the session actor."""

    __slots__ = (
        "close_delivered",
        "close_sent",
        "config",
        "disconnect_code",
        "disconnected",
        "finished",
        "gateway",
        "opened",
        "receive",
        "scope",
        "send",
        "session",
        "socket",
    )

    def __init__(
        self,
        scope: Mapping[str, Any],
        receive: ASGIReceive,
        send: ASGISend,
        config: WebGateway,
        gateway: GatewayState,
        socket: WsSocket | None = None,
    ) -> None:
        self.scope = scope
        #: The fast path's own WebSocket (batched and direct writes), or None
        #: under hypercorn, where every frame is one ASGI ``websocket.send``.
        self.socket = socket
        self.gateway = gateway
        self.receive = receive
        self.send = send
        self.config = config
        self.session: Any = None  # the session's ActorRef once it runs
        self.opened = trio.Event()  # the gateway spawned the session (or failed to)
        self.finished = trio.Event()  # the session is done with the socket
        self.disconnected = trio.Event()
        self.disconnect_code = CLOSE_ABNORMAL
        self.close_sent = False
        self.close_delivered = False

    def mark_disconnected(self, code: int) -> None:
        if not self.disconnected.is_set():
            self.disconnect_code = code
            self.disconnected.set()

    def abandon(self) -> None:
        """The ASGI side is going away (server shutdown): stop the session."""
        self.mark_disconnected(CLOSE_ABNORMAL)
        if self.session is not None:
            try:
                self.session.tell_nowait(WsPeerClosed())
            except TrouperError:
                pass  # dead already, or its mailbox is full (it stops with the gateway)

    async def send_close(self, code: int, reason: str, timeout: float) -> None:
        """Send the close frame once. Even when the write cannot finish in
        time, hypercorn then counts the socket as closed by the application."""
        if self.close_sent or self.disconnected.is_set():
            return
        self.close_sent = True
        reason = reason.encode()[:123].decode(errors="ignore")
        with trio.move_on_after(timeout):
            await self.send({"type": "websocket.close", "code": code, "reason": reason})
            self.close_delivered = True


class WsOpen:
    __slots__ = ()


class WsReceived:
    __slots__ = ("data", "text")

    def __init__(self, text: str | None, data: bytes | None) -> None:
        self.text = text
        self.data = data


class WsPeerClosed:
    __slots__ = ()


class WsSlowCheck:
    __slots__ = ("token",)

    def __init__(self, token: int) -> None:
        self.token = token
