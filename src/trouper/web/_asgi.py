"""Between ASGI and the gateway's own requests, both ways.

* ``AsgiBridge``: an ASGI application mounted on the gateway
  (``WebGateway(mounts=...)``), served by the fast path. HTTP only: the
  request body is handed over at once, and the response is collected
  whole (a streaming response ends when the app returns; a mounted app that
  must stream needs ``server="hypercorn"``). Its WebSockets go through
  ``_asgiws``.
* ``request_from_scope``/``send_response``: the gateway's own routes served
  by hypercorn (``server="hypercorn"``), through the same pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from ._h1 import H1Error, Request, Response

__all__ = ["AsgiBridge", "request_from_scope", "send_response"]

_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class AsgiBridge:
    """One mounted ASGI app, answering the fast path's requests under ``prefix``."""

    def __init__(self, prefix: str, app: Any, server: tuple[str, int] | None = None) -> None:
        self.prefix = prefix
        self.app = app
        self.server = server

    def covers(self, path: str) -> bool:
        prefix = self.prefix
        return path == prefix or path.startswith(prefix + "/")

    async def __call__(self, request: Request) -> Response:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version,
            "method": request.method,
            "scheme": "http",
            "path": request.path[len(self.prefix) :] or "/",
            "raw_path": request.path.encode(),
            "query_string": request.query_string,
            "root_path": self.prefix,
            "headers": list(request.headers),
            "client": request.client,
            "server": self.server,
            "state": {},
        }
        pending = [{"type": "http.request", "body": request.body, "more_body": False}]
        status = 500
        headers: list[tuple[str, str]] = []
        body: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            # The body was given whole; the client is there until we answer.
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(event: Mapping[str, Any]) -> None:
            nonlocal status
            if event["type"] == "http.response.start":
                status = int(event["status"])
                for name, value in event.get("headers", ()):
                    name = bytes(name).decode("latin-1").lower()
                    if name not in _HOP_BY_HOP:
                        headers.append((name, bytes(value).decode("latin-1")))
            elif event["type"] == "http.response.body":
                body.append(bytes(event.get("body", b"")))

        await self.app(scope, receive, send)
        return Response(b"".join(body), status, headers)


async def request_from_scope(scope: Mapping[str, Any], receive: Any, max_body: int) -> Request:
    """The request of an ASGI ``http`` scope, its body read (at most
    ``max_body`` bytes: ``H1Error(413)`` past it)."""
    request = Request()
    request.method = scope["method"]
    request.path = scope["path"]
    request.query_string = scope.get("query_string", b"")
    request.version = scope.get("http_version", "1.1")
    request.headers = [(bytes(k).lower(), bytes(v)) for k, v in scope.get("headers", ())]
    client = scope.get("client")
    request.client = (str(client[0]), int(client[1])) if client else None
    length = request.header("content-length")
    if length is not None and length.isdigit() and int(length) > max_body:
        raise H1Error(413, f"request body over {max_body} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        event = await receive()
        if event["type"] != "http.request":
            break  # http.disconnect: answer anyway, nobody will read it
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise H1Error(413, f"request body over {max_body} bytes")
        chunks.append(chunk)
        if not event.get("more_body", False):
            break
    request.body = b"".join(chunks)
    return request


async def send_response(send: Any, response: Response, head: bool) -> None:
    """Send ``response`` through ASGI (hypercorn leaves the body out for HEAD)."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if response.status not in (204, 304):
        headers.append((b"content-length", b"%d" % len(response.body)))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})
