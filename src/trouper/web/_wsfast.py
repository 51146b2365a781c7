"""WebSockets on the gateway's own HTTP/1.1 path (``server="trouper"``).

``H1Server`` hands an ``Upgrade:`` request and its stream to
``serve_upgrade``, which checks the handshake (RFC 6455; a bad one is
answered 400, or 426 for a version other than 13), then serves the
connection with the same code as the hypercorn path: ``WsSocket`` offers
the ASGI ``receive``/``send`` pair that ``GatewayApp`` and the sessions
already speak, over our own framing (``_wsframe``), so a
``WebSocketSession`` sees the same messages either way and peers on
``peers_path`` get the same ``AsgiWebSocketStream``.

What the fast path adds is for sending: ``send_frames`` writes a batch of
frames (each encoded once per broadcast, ``Outgoing.wire``) in one
``send_all``, and ``write_now`` writes a frame straight into the socket
from the broadcaster's task when nothing is queued before it, so a
delivery to a client that keeps up wakes no task at all.

Writes are serialized by one lock. A write cut short (cancelled, or the
client gone) leaves the wire mid-frame: the socket then takes no more
bytes and the connection ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import trio

from ._app import GatewayApp
from ._connection import CLOSE_ABNORMAL
from ._h1 import Request, Response, serialize
from ._wsframe import (
    CLOSE_NO_STATUS,
    OP_PONG,
    Close,
    FrameDecoder,
    HandshakeError,
    Message,
    Outgoing,
    Ping,
    WsProtocolError,
    accept_key,
    check_handshake,
    close_frame,
    encode_frame,
)

__all__ = [
    "FLUSH",
    "NOT_WRITTEN",
    "OWING",
    "WRITTEN",
    "GatewayContext",
    "WsSocket",
    "serve_upgrade",
]

READ_SIZE = 64 * 1024
#: What ``WsSocket.write_now`` did.
NOT_WRITTEN, WRITTEN, OWING = range(3)
#: An empty frame: writing it sends what the socket owes.
FLUSH = Outgoing.raw(b"")


#: What ``serve_upgrade`` is given of the gateway: its ASGI app, which holds
#: the config, the shared state and the gateway actor's ref.
GatewayContext = GatewayApp


async def serve_upgrade(
    gateway: GatewayApp, request: Request, stream: trio.abc.Stream, rest: bytes
) -> None:
    """Serve one upgrade request on ``stream`` until the WebSocket is over.

    Under a mounted app's prefix, the gateway's ASGI app passes the
    WebSocket to that app (the admin dashboard's live view); on any path
    other than these, ``ws_path`` and ``peers_path`` it is answered 404.
    """
    config = gateway.config
    path = request.path
    mounted = any(path == p or path.startswith(p + "/") for p, _ in config.mounts)
    if path not in (config.ws_path, config.peers_path) and not mounted:
        await _answer(stream, Response("no WebSocket endpoint here\n", 404))
        return
    try:
        key = check_handshake(request.method, request.version, request.header)
    except HandshakeError as exc:
        await _answer(stream, Response(f"{exc}\n", exc.status, exc.headers))
        return
    peers = path == config.peers_path
    limit = config.peers_max_message_size if peers else config.max_message_size
    sock = WsSocket(stream, key, limit, rest)
    scope = _scope(request, stream)
    try:
        if path in (config.ws_path, config.peers_path):
            await gateway._websocket(scope, sock.receive, sock.send, sock)
        else:  # a mounted ASGI app's WebSocket
            await gateway(scope, sock.receive, sock.send)
    finally:
        sock.retire()


async def _answer(stream: trio.abc.Stream, response: Response) -> None:
    await stream.send_all(serialize(response, keep_alive=False))


def _scope(request: Request, stream: trio.abc.Stream) -> dict[str, Any]:
    """The ASGI scope a session reads (``session.scope``), as hypercorn builds it."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": request.query_string,
        "root_path": "",
        "headers": list(request.headers),
        "client": request.client,
        "server": _local(stream),
        "subprotocols": [],
        "extensions": {},
    }


def _local(stream: trio.abc.Stream) -> tuple[str, int] | None:
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return None
    return (str(host), int(port))


class WsSocket:
    """One server-side WebSocket over a stream, speaking ASGI's ``receive``
    and ``send`` events plus the fast path's batched and direct writes."""

    def __init__(self, stream: trio.abc.Stream, key: bytes, max_message_size: int, rest: bytes):
        self.stream = stream
        self._key = key
        self._decoder = FrameDecoder(max_message_size)
        self._events: list[Any] = []
        self._rest = rest
        self._lock = trio.StrictFIFOLock()
        self._fileno: Callable[[], int] | None = None
        self._owed = b""  # the rest of a frame a direct write left
        sock = getattr(stream, "socket", None)
        if isinstance(stream, trio.SocketStream) and sock is not None:
            self._fileno = sock.fileno
        self._connected = False
        self.accepted = False
        self.close_sent = False
        self.disconnected: int | None = None  # the code, once reported
        self.broken = False  # a write was cut short, or the connection is over

    # -- writes ------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write whole frames (or the handshake) in one ``send_all``, after
        what a short direct write left owing."""
        async with self._lock:
            if self.broken:
                await trio.lowlevel.checkpoint()
                return
            if self._owed:
                data, self._owed = self._owed + data, b""
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.broken = True  # the client went away: the reader reports it
            except BaseException:
                self.broken = True  # cancelled mid-frame: nothing may follow
                raise

    async def send_frames(self, frames: list[Outgoing]) -> None:
        if len(frames) == 1:
            await self.write(frames[0].wire())
        else:
            await self.write(b"".join([frame.wire() for frame in frames]))

    def write_now(self, frame: Outgoing) -> int:
        """Write ``frame`` without waiting, if the socket can take it now.

        ``NOT_WRITTEN`` (a write is under way or owed, or this stream has no
        socket), ``WRITTEN`` (whole), or ``OWING``: the socket took part of
        it and owes the rest, which the next ``write`` sends first (so a
        pong or a close frame never lands inside it); an empty write (the
        ``FLUSH`` frame) sends just that.
        """
        fileno = self._fileno
        if fileno is None or self.broken or self._owed or self._lock.locked():
            return NOT_WRITTEN
        if self.close_sent:
            return NOT_WRITTEN
        wire = frame.wire()
        try:
            sent = os.write(fileno(), wire)
        except BlockingIOError:
            return NOT_WRITTEN
        except OSError:
            self.broken = True  # the client is gone: the reader reports it
            return WRITTEN
        if sent == len(wire):
            return WRITTEN
        self._owed = wire[sent:]
        return OWING

    def retire(self) -> None:
        """The connection is over: no direct write may reach its file
        descriptor (the number is reused by the next connection)."""
        self.broken = True
        self._fileno = None

    # -- ASGI ----------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "websocket.send":
            if self.close_sent or self.disconnected is not None:
                await trio.lowlevel.checkpoint()
                return
            text = event.get("text")
            frame = Outgoing(text, None if text is not None else event.get("bytes"))
            await self.write(frame.wire())
        elif kind == "websocket.accept":
            self.accepted = True
            head = (
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                b"connection: Upgrade\r\nsec-websocket-accept: %s\r\n\r\n" % accept_key(self._key)
            )
            await self.write(head)
        elif kind == "websocket.close":
            if not self.accepted:  # refused before the handshake: as hypercorn, 403
                self.close_sent = True
                await self.write(serialize(Response("forbidden\n", 403), keep_alive=False))
                return
            await self._send_close(int(event.get("code", 1000)), event.get("reason") or "")

    async def _send_close(self, code: int, reason: str) -> None:
        if self.close_sent or self.broken:
            await trio.lowlevel.checkpoint()
            return
        self.close_sent = True
        await self.write(close_frame(code, reason))

    async def receive(self) -> dict[str, Any]:
        if not self._connected:
            # The first event of an ASGI WebSocket: the client asks to connect.
            self._connected = True
            return {"type": "websocket.connect"}
        while self.disconnected is None:
            if not self._events:
                await self._read()
                continue
            event = self._events.pop(0)
            if isinstance(event, Message):
                data = event.data
                if isinstance(data, str):
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if isinstance(event, Ping):
                await self.write(encode_frame(OP_PONG, event.payload))
            elif isinstance(event, Close):
                # Echo the client's close (the closing handshake), then it is over.
                echo = 1000 if event.code == CLOSE_NO_STATUS else event.code
                await self._send_close(echo, "")
                self.disconnected = event.code
        return {"type": "websocket.disconnect", "code": self.disconnected}

    async def _read(self) -> None:
        data: bytes | bytearray = self._rest
        self._rest = b""
        if not data:
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
        if not data:
            self.disconnected = CLOSE_ABNORMAL
            return
        try:
            self._events.extend(self._decoder.feed(bytes(data)))
        except WsProtocolError as exc:
            self._events.clear()
            await self._send_close(exc.code, exc.reason)
            self.disconnected = exc.code
