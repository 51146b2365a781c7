"""HTTP/1.1 for the gateway's fast path: parse requests, serialize responses.

Sans-IO: ``H1Parser.feed(data)`` returns the requests completed by ``data``
(several when a client pipelines), and ``serialize`` turns a response into
the bytes to write. The parsing itself is httptools (llhttp, C, no event
loop), whose callbacks fill one ``Request`` at a time.

Bounds (``H1Limits``) are checked while parsing, so a client cannot make the
server buffer more than ``max_head`` bytes of request line and headers or
``max_body`` bytes of body: the error says which, and ``status`` is the
answer to send (431 or 413) before closing.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from time import time
from typing import Any
from urllib.parse import unquote

import attrs
import httptools

__all__ = ["H1Error", "H1Limits", "H1Parser", "Request", "Response", "serialize"]


@attrs.frozen
class H1Limits:
    """What one request may make the server hold."""

    max_head: int = 16 * 1024  # request line + headers, bytes
    max_headers: int = 100
    max_body: int = 1024 * 1024


class H1Error(Exception):
    """The client's bytes are not a request we accept; answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Request:
    """One HTTP request as a handler sees it.

    ``headers`` keeps the raw ``(name, value)`` pairs, names lower-cased;
    ``header(name)`` reads one. ``path_params`` is filled by the router,
    ``state`` by middleware (``claims``, ``request_id``...).
    """

    __slots__ = (
        "body",
        "client",
        "headers",
        "keep_alive",
        "method",
        "path",
        "path_params",
        "query_string",
        "state",
        "upgrade",
        "version",
    )

    def __init__(self) -> None:
        self.method = "GET"
        self.path = "/"
        self.query_string = b""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.keep_alive = True
        self.upgrade = False
        self.client: tuple[str, int] | None = None
        self.path_params: dict[str, str] = {}
        self.state: dict[str, Any] = {}

    def header(self, name: str, default: str | None = None) -> str | None:
        key = name.lower().encode("latin-1")
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return default

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class Response:
    """What a handler returns: status, extra headers, a body."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        content_type: str | None = None,
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = list(headers)
        if content_type is not None:
            self.headers.append(("content-type", content_type))

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


class H1Parser:
    """Feeds bytes to httptools and collects finished requests."""

    def __init__(self, limits: H1Limits | None = None) -> None:
        self.limits = limits or H1Limits()
        self._parser = httptools.HttpRequestParser(self)
        self._current: Request | None = None
        self._url = b""
        self._head = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._done: list[Request] = []
        self.upgraded: Request | None = None
        #: A request with ``Expect: 100-continue`` waits for its body: the
        #: server answers ``100 Continue`` (once the head passed the limits).
        self.continue_pending = False
        self.rest = b""  # bytes after an upgrade request: the new protocol's

    def feed(self, data: bytes) -> list[Request]:
        """The requests that ``data`` completes; raises ``H1Error`` on bad input.

        After an upgrade request (``upgraded`` set) the parser stops: the
        bytes that followed it are in ``rest``.
        """
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.rest = data[offset:]
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, H1Error):
                raise exc.__context__ from None
            raise H1Error(400, f"malformed request: {exc}") from None
        done, self._done = self._done, []
        return done

    # -- httptools callbacks --------------------------------------------

    def on_message_begin(self) -> None:
        self._current = Request()
        self._url = b""
        self._head = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        headers = self._current.headers
        if len(headers) >= self.limits.max_headers:
            raise H1Error(431, f"more than {self.limits.max_headers} headers")
        self._count_head(len(name) + len(value) + 4)
        headers.append((name.lower(), value))

    def _count_head(self, n: int) -> None:
        self._head += n
        if self._head > self.limits.max_head:
            raise H1Error(431, f"request head over {self.limits.max_head} bytes")

    def on_headers_complete(self) -> None:
        request = self._current
        assert request is not None
        parser = self._parser
        request.method = parser.get_method().decode("ascii")
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        url = httptools.parse_url(self._url)
        path = url.path
        # Routes and files match the decoded path, as ASGI's ``path`` is.
        request.path = (
            unquote(path.decode("utf-8", "replace"))
            if b"%" in path
            else path.decode("utf-8", "replace")
        )
        request.query_string = url.query or b""
        request.upgrade = parser.should_upgrade()
        for name, value in request.headers:
            if name == b"content-length" and int(value or b"0") > self.limits.max_body:
                raise H1Error(413, f"request body over {self.limits.max_body} bytes")
            if name == b"expect" and value.lower() == b"100-continue":
                self.continue_pending = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            raise H1Error(413, f"request body over {self.limits.max_body} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.continue_pending = False  # the body came anyway
        request = self._current
        assert request is not None
        request.body = b"".join(self._body)
        self._current = None
        if request.upgrade:
            self.upgraded = request
        self._done.append(request)


#: Statuses that never carry a body, nor a length (RFC 9110, 8.6).
_NO_BODY = frozenset({204, 304})
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    global _date_cache
    now = int(time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def serialize(response: Response, keep_alive: bool, head: bool = False) -> bytes:
    """The bytes of ``response``; ``head`` leaves out the body (HEAD requests)."""
    status = response.status
    parts = [
        b"HTTP/1.1 %d %s\r\ndate: %s\r\n" % (status, _REASONS.get(status, b"Unknown"), http_date())
    ]
    for name, value in response.headers:
        parts.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    body = response.body
    if status not in _NO_BODY:
        parts.append(b"content-length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)
