"""``Routes``: the gateway's typed HTTP routes.

``routes.route("/api/users/{id}", methods=["GET"])`` registers an async
handler, as a decorator or as a call. What the handler is given comes from
its signature, read once when it is registered:

* a parameter annotated ``Request`` gets the request;
* a parameter named in the path gets that segment, converted to its
  annotation (``id: int``);
* a parameter annotated with a ``msgspec.Struct`` (or named ``body``) gets the
  JSON body, decoded and validated by msgspec;
* any other parameter is a query parameter (``?limit=10``), converted the
  same way; one without a default is required.

A bad path, query or body is a 422 naming the field. The handler returns a
``Response``, or anything msgspec encodes (a Struct, a dict...) which is sent
as JSON, or None (204). Matching: exact paths in one dict lookup, then the
patterns in the order they were registered.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from .._errors import ConfigurationError
from ._h1 import Request, Response

__all__ = ["Route", "Routes"]

Handler = Callable[..., Awaitable[Any]]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NO_DEFAULT = inspect.Parameter.empty
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class BadInput(Exception):
    """A path or query parameter that does not convert: a 422."""

    def __init__(self, where: str, name: str, error: msgspec.ValidationError | str) -> None:
        super().__init__(f"{where} parameter {name!r}: {error}")
        self.where = where
        self.name = name
        self.error = error if isinstance(error, msgspec.ValidationError) else None


class Param(msgspec.Struct, frozen=True):
    """One argument of a handler and where it comes from."""

    name: str
    source: str  # "request", "path", "query", "body"
    annotation: Any
    default: Any
    required: bool


class Route:
    """One registered route (read by the router and the OpenAPI generator)."""

    __slots__ = (
        "_call",
        "auth",
        "handler",
        "methods",
        "name",
        "params",
        "path",
        "path_names",
        "pattern",
        "returns",
        "roles",
        "summary",
        "tags",
    )

    def __init__(
        self,
        path: str,
        handler: Handler,
        methods: Iterable[str],
        roles: Iterable[str] = (),
        auth: bool | None = None,
        name: str | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        if not path.startswith("/"):
            raise ConfigurationError(f"a route's path starts with '/': {path!r}")
        if not inspect.iscoroutinefunction(handler):
            raise ConfigurationError(f"route {path}: the handler must be async: {handler!r}")
        self.path = path
        self.handler = handler
        self.methods = frozenset(m.upper() for m in methods)
        unknown = self.methods - _METHODS
        if unknown or not self.methods:
            raise ConfigurationError(f"route {path}: unknown HTTP methods {sorted(unknown)}")
        self.roles = tuple(roles)
        # Needing a role needs a token.
        self.auth = True if self.roles else auth
        self.name = name or getattr(handler, "__name__", path)
        self.tags = tuple(tags)
        doc = inspect.getdoc(handler) or ""
        self.summary = doc.split("\n\n", 1)[0].replace("\n", " ")
        self.path_names = tuple(_PARAM.findall(path))
        if len(set(self.path_names)) != len(self.path_names):
            raise ConfigurationError(f"route {path}: a path parameter appears twice")
        self.pattern = _compile(path) if self.path_names else None
        self.params, self.returns = _signature(path, handler, self.path_names)
        self._call = _invoker(handler, self.params)

    async def __call__(self, request: Request) -> Response:
        return to_response(await self._call(request))

    def __repr__(self) -> str:
        return f"<Route {'|'.join(sorted(self.methods))} {self.path} -> {self.name}>"


class Routes:
    """A table of routes, given to ``WebGateway(routes=...)`` or filled
    through ``GatewayHandle.route`` while the gateway serves."""

    def __init__(self) -> None:
        self._exact: dict[str, list[Route]] = {}
        self._patterns: list[Route] = []
        self.routes: list[Route] = []

    def route(
        self,
        path: str,
        handler: Handler | None = None,
        *,
        methods: Iterable[str] = ("GET",),
        roles: Iterable[str] = (),
        auth: bool | None = None,
        name: str | None = None,
        tags: Iterable[str] = (),
    ) -> Any:
        """Register ``handler`` for ``path``; without ``handler``, a decorator.

        ``roles``: the JWT claims must grant each of them (403 otherwise);
        ``auth``: True needs a valid token, False never asks for one, None
        (default) follows ``JWTAuth.required``.
        """

        def register(fn: Handler) -> Handler:
            self.add(Route(path, fn, methods, roles, auth, name, tags))
            return fn

        return register if handler is None else register(handler)

    def add(self, route: Route) -> None:
        for other in self.routes:
            if other.path == route.path and other.methods & route.methods:
                taken = sorted(other.methods & route.methods)
                raise ConfigurationError(f"route {route.path}: {taken} registered already")
        self.routes.append(route)
        if route.pattern is None:
            self._exact.setdefault(route.path, []).append(route)
        else:
            self._patterns.append(route)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """The route for ``method path`` and its path parameters, or None and
        the methods the path allows (empty: no route has the path)."""
        candidates = self._exact.get(path)
        if candidates is not None:
            for route in candidates:
                if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                    return route, {}, []
            return None, {}, _allowed(candidates)
        allowed: list[Route] = []
        for route in self._patterns:
            assert route.pattern is not None
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return route, found.groupdict(), []
            allowed.append(route)
        return None, {}, _allowed(allowed)

    def __len__(self) -> int:
        return len(self.routes)


def _allowed(routes: list[Route]) -> list[str]:
    methods = {m for r in routes for m in r.methods}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _compile(path: str) -> re.Pattern[str]:
    parts = _PARAM.split(path)
    regex = "".join(
        f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return re.compile(regex)


def _is_struct(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)


def _signature(
    path: str, handler: Handler, path_names: tuple[str, ...]
) -> tuple[tuple[Param, ...], Any]:
    try:
        hints = typing.get_type_hints(handler)
    except Exception as exc:
        message = f"route {path}: cannot read the handler's annotations: {exc}"
        raise ConfigurationError(message) from None
    params: list[Param] = []
    for p in inspect.signature(handler).parameters.values():
        annotation = hints.get(p.name, str)
        if annotation is Request or (
            isinstance(annotation, type) and issubclass(annotation, Request)
        ):
            source = "request"
        elif p.name in path_names:
            source = "path"
        elif _is_struct(annotation) or p.name == "body":
            source = "body"
        else:
            source = "query"
        required = p.default is _NO_DEFAULT
        params.append(Param(p.name, source, annotation, None if required else p.default, required))
    for param in params:
        if param.source != "request" and not _describable(param.annotation):
            raise ConfigurationError(
                f"route {path}: msgspec cannot decode parameter {param.name!r} "
                f"as {param.annotation!r}"
            )
    missing = set(path_names) - {p.name for p in params if p.source == "path"}
    if missing:
        raise ConfigurationError(f"route {path}: the handler takes no {sorted(missing)}")
    if sum(p.source == "body" for p in params) > 1:
        raise ConfigurationError(f"route {path}: the handler takes more than one body")
    returns = hints.get("return", Any)
    # A result type msgspec cannot describe (``Response | dict``) is left out
    # of the OpenAPI document: the handler still works.
    return tuple(params), returns if _describable(returns) else Any


def _describable(annotation: Any) -> bool:
    try:
        msgspec.json.schema(annotation)
    except Exception:  # TypeError mostly; a class's own annotations may not even resolve
        return False
    return True


def _invoker(handler: Handler, params: tuple[Param, ...]) -> Callable[[Request], Awaitable[Any]]:
    """The call of ``handler`` for a request, built once."""
    if len(params) == 1 and params[0].source == "request":
        return handler  # the common case costs nothing
    if not params:
        return lambda request: handler()

    def build(request: Request) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        query: dict[str, str] | None = None
        for p in params:
            if p.source == "request":
                kwargs[p.name] = request
            elif p.source == "path":
                kwargs[p.name] = _convert("path", p, request.path_params[p.name])
            elif p.source == "body":
                kwargs[p.name] = msgspec.json.decode(request.body or b"null", type=p.annotation)
            else:
                if query is None:
                    query = dict(parse_qsl(request.query_string.decode("latin-1")))
                if p.name in query:
                    kwargs[p.name] = _convert("query", p, query[p.name])
                elif p.required:
                    raise BadInput("query", p.name, "missing")
        return kwargs

    async def call(request: Request) -> Any:
        return await handler(**build(request))

    return call


def _convert(where: str, param: Param, value: str) -> Any:
    if param.annotation is str or param.annotation is Any:
        return value
    try:
        return msgspec.convert(value, param.annotation, strict=False)
    except msgspec.ValidationError as exc:
        raise BadInput(where, param.name, exc) from None


def to_response(result: Any) -> Response:
    """What a handler returned, as a response (JSON unless it is one)."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(b"", 204)
    return Response(msgspec.json.encode(result), 200, (), "application/json")
