"""The gateway's middleware chain.

A middleware is ``async def mw(request, call_next) -> Response``. The chain
is composed once, when the gateway starts; a request goes through, from the
outside in (docs/web.md, "Middleware"):

1. request id (``X-Request-Id`` in and out; the trace id when tracing is on),
2. access log (the ``trouper.web.access`` logger, at INFO),
3. CORS (``WebGateway(cors=CORS(...))``),
4. the per-client rate limit (``WebGateway(rate_limit=RateLimit(...))``),
5. JWT bearer authentication (``WebGateway(auth=JWTAuth(...))``),
6. the application's own (``WebGateway(middleware=[...])``), in order,

then the route. The request-size limit comes before all of them: the HTTP
parser refuses a body over ``WebGateway.max_body`` (413) before reading it.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from secrets import token_hex
from time import perf_counter
from typing import Any

import attrs

from ._h1 import Request, Response
from ._statuses import json_error

__all__ = ["CORS", "AccessLog", "Cors", "Middleware", "Next", "RequestId", "compose"]

Next = Callable[[Request], Awaitable[Response]]
Middleware = Callable[[Request, Next], Awaitable[Response]]

access_log = logging.getLogger("trouper.web.access")

#: A client's own request id is kept when it is this tame (it goes into
#: logs and headers as is); anything else is replaced by a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _fresh_ids() -> Callable[[], str]:
    """Unique ids without a system call each: a random prefix per process
    (ids of different processes and restarts do not collide) and a counter.
    They need to be unique, not secret."""
    prefix = token_hex(4)
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):x}"


fresh_id = _fresh_ids()


def compose(middleware: Sequence[Middleware], endpoint: Next) -> Next:
    """``middleware[0]`` outermost, ``endpoint`` innermost."""
    call = endpoint
    for mw in reversed(middleware):
        call = _bind(mw, call)
    return call


def _bind(mw: Middleware, call_next: Next) -> Next:
    async def call(request: Request) -> Response:
        return await mw(request, call_next)

    return call


class RequestId:
    """Gives every request an id (``request.state["request_id"]``), sent back
    as ``X-Request-Id``. With tracing on, the request runs in a SERVER span
    (a child of the client's ``traceparent``) and a request that came
    without an id gets the span's trace id as its id."""

    def __init__(self, tracing: Any = None) -> None:
        self.tracing = tracing

    async def __call__(self, request: Request, call_next: Next) -> Response:
        given = request.header("x-request-id")
        if given is not None and not _REQUEST_ID.fullmatch(given):
            given = None
        tracing = self.tracing
        if tracing is None:
            request.state["request_id"] = rid = given or fresh_id()
            response = await call_next(request)
        else:
            route = request.state.get("route")
            name = route.path if route is not None else "other"
            with tracing.http_server(request.method, name, request.header("traceparent")) as span:
                trace_id = span.get_span_context().trace_id
                rid = given or (format(trace_id, "032x") if trace_id else fresh_id())
                request.state["request_id"] = rid
                response = await call_next(request)
                if span.is_recording():
                    span.set_attribute("http.response.status_code", response.status)
                    span.set_attribute("http.request.id", rid)
        response.headers.append(("x-request-id", rid))
        return response


class AccessLog:
    """One INFO line per request on ``trouper.web.access``: client, method,
    path, status, bytes, milliseconds, request id. Costs one level check
    when the logger is off."""

    async def __call__(self, request: Request, call_next: Next) -> Response:
        if not access_log.isEnabledFor(logging.INFO):
            return await call_next(request)
        started = perf_counter()
        response = await call_next(request)
        client = request.client[0] if request.client else "-"
        access_log.info(
            '%s "%s %s" %d %d %.1fms %s',
            client,
            request.method,
            request.path,
            response.status,
            len(response.body),
            (perf_counter() - started) * 1000,
            request.state.get("request_id", "-"),
        )
        return response


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class CORS:
    """Which browser origins may call the gateway's routes.

    ``origins``: exact origins (``"https://app.example"``), or ``"*"`` for
    any (never with ``credentials``). ``allow``, when given, is asked about
    an origin not in ``origins`` (``await allow(origin)``: True lets it in),
    for a set of origins that changes at run time, such as a cluster's own
    gateways; it is called for every such request, so it must be cheap and
    bound what it keeps. A preflight (``OPTIONS`` with
    ``Access-Control-Request-Method``) from an allowed origin is answered
    204 here; from another origin, 403. A simple request from another origin
    is served without CORS headers, so the browser hides the answer.
    """

    origins: tuple[str, ...] = attrs.field(converter=_names)
    methods: tuple[str, ...] = attrs.field(
        default=("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"), converter=_names
    )
    headers: tuple[str, ...] = attrs.field(
        default=("authorization", "content-type", "x-request-id"), converter=_names
    )
    expose: tuple[str, ...] = attrs.field(default=("x-request-id",), converter=_names)
    credentials: bool = False
    max_age: int = 600
    allow: Callable[[str], Awaitable[bool]] | None = None

    def __attrs_post_init__(self) -> None:
        from .._errors import ConfigurationError

        if self.credentials and "*" in self.origins:
            raise ConfigurationError("CORS: credentials cannot be allowed to every origin ('*')")


class Cors:
    """The middleware of a ``CORS`` policy."""

    def __init__(self, policy: CORS) -> None:
        self.policy = policy
        self.any = "*" in policy.origins
        self.origins = frozenset(policy.origins)
        self.preflight = [
            ("access-control-allow-methods", ", ".join(policy.methods)),
            ("access-control-allow-headers", ", ".join(policy.headers)),
            ("access-control-max-age", str(policy.max_age)),
        ]
        self.simple = [("access-control-expose-headers", ", ".join(policy.expose))]
        if policy.credentials:
            self.simple.append(("access-control-allow-credentials", "true"))

    async def __call__(self, request: Request, call_next: Next) -> Response:
        origin = request.header("origin")
        if origin is None:
            return await call_next(request)
        allowed = self.any or origin in self.origins
        if not allowed and self.policy.allow is not None:
            allowed = await self.policy.allow(origin)
        wanted = request.header("access-control-request-method")
        if request.method == "OPTIONS" and wanted is not None:
            if not allowed or wanted.upper() not in self.policy.methods:
                return json_error(403, "cors", f"origin {origin!r} may not {wanted}", request)
            response = Response(b"", 204, self.preflight)
        else:
            response = await call_next(request)
            if not allowed:
                return response
        value = "*" if self.any and not self.policy.credentials else origin
        response.headers.append(("access-control-allow-origin", value))
        response.headers.append(("vary", "origin"))
        response.headers.extend(self.simple)
        return response
