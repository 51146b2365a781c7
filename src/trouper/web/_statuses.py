"""Errors to HTTP statuses, in one place, and the gateway's JSON error bodies.

Every error answer of the gateway's routes is ``{"error": code, "message":
..., "request_id": ...}`` with ``application/json``. A trouper error keeps
its ``error_code``; a retryable one that says when to come back
(``retry_delay``) gets a ``Retry-After`` in whole seconds. An error nobody
expected is a 500 whose body says nothing of the cause (no traceback, no
message): the log has it, under the same request id.
"""

from __future__ import annotations

import logging
import math
import re

import msgspec

from .._errors import (
    ActorNotFound,
    AskTimeout,
    CircuitOpen,
    Forbidden,
    InvalidArgument,
    NodeDown,
    RateLimited,
    TrouperError,
    Unauthorized,
)
from ._h1 import Request, Response

__all__ = ["error_response", "json_error", "status_of"]

log = logging.getLogger("trouper.web")

JSON = "application/json"

#: The most specific class first: ``Forbidden`` is an ``Unauthorized``.
_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (AskTimeout, 504),
    (CircuitOpen, 503),
    (NodeDown, 503),
    (RateLimited, 503),
    (ActorNotFound, 404),
    (Forbidden, 403),
    (Unauthorized, 401),
    (InvalidArgument, 400),
    (msgspec.ValidationError, 422),
    (msgspec.DecodeError, 400),
)

_FIELD = re.compile(r" - at `\$\.?(?P<field>[^`]*)`$")


def status_of(exc: BaseException) -> int:
    """The status that answers ``exc`` (500 for anything unknown)."""
    for kind, status in _STATUSES:
        if isinstance(exc, kind):
            return status
    return 500


def json_error(
    status: int,
    code: str,
    message: str,
    request: Request | None = None,
    headers: list[tuple[str, str]] | None = None,
    **extra: object,
) -> Response:
    """A JSON error body, with the request's id when it has one."""
    body: dict[str, object] = {"error": code, "message": message}
    body.update(extra)
    if request is not None and "request_id" in request.state:
        body["request_id"] = request.state["request_id"]
    return Response(msgspec.json.encode(body), status, headers or (), JSON)


def error_response(exc: Exception, request: Request) -> Response:
    """The answer to a route that raised ``exc``."""
    status = status_of(exc)
    headers: list[tuple[str, str]] = []
    if status == 500:
        log.error(
            "request %s: %s %s failed",
            request.state.get("request_id", "-"),
            request.method,
            request.path,
            exc_info=exc,
        )
        return json_error(500, "internal", "internal server error", request)
    if status == 401:
        headers.append(("www-authenticate", "Bearer"))
    if isinstance(exc, TrouperError):
        code = exc.error_code
        if status == 503:
            headers.append(("retry-after", retry_after(exc.retry_delay)))
    elif isinstance(exc, msgspec.ValidationError):
        return validation_error(exc, request)
    else:
        code = "malformed-json"
    return json_error(status, code, str(exc), request, headers)


def validation_error(
    exc: msgspec.ValidationError, request: Request, where: str = "body", field: str | None = None
) -> Response:
    """422 naming the field: msgspec's error path in the body
    (``$.address.city`` is ``address.city``), or the parameter's name."""
    message = str(exc)
    if field is None:
        match = _FIELD.search(message)
        field = match["field"] if match else None
    else:
        message = f"{where} parameter {field!r}: {message}"
    return json_error(422, "validation", message, request, None, field=field, where=where)


def retry_after(delay: float | None) -> str:
    """``Retry-After`` in whole seconds, at least 1."""
    return str(max(1, math.ceil(delay or 1.0)))
