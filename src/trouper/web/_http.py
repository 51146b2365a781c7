"""The gateway's HTTP pipeline: one ``Request -> Response`` callable that both
servers run (the fast path's ``H1Server`` directly, hypercorn through
``GatewayApp``).

A request is matched first (the application's routes, then the gateway's
own: ``/healthz``, ``/readyz``, ``/openapi.json``), so that middleware can
see which route it is for (``request.state["route"]``, None when no route
matched), then goes through the middleware chain (``_middleware``), then is
answered: by its route, else 405 (with ``Allow``) when the path has routes
for other methods, else by a mounted ASGI app, else 426 on the WebSocket
paths, else a static file, else 404. Every error answer is JSON
(``_statuses``).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

import msgspec

from ._asgi import AsgiBridge
from ._auth import Authenticate, Throttle
from ._h1 import Request, Response
from ._middleware import AccessLog, Cors, Middleware, RequestId, compose
from ._openapi import openapi_document
from ._routes import BadInput, Route, Routes
from ._static import StaticFiles
from ._statuses import JSON, error_response, json_error, validation_error
from ._web_metrics import route_of

if TYPE_CHECKING:
    from ._config import WebGateway
    from ._connection import GatewayState

__all__ = ["HttpPipeline"]

_NO_STORE = [("cache-control", "no-store"), ("x-content-type-options", "nosniff")]


class HttpPipeline:
    def __init__(
        self, config: WebGateway, state: GatewayState, routes: Routes, tracing: Any = None
    ) -> None:
        self.config = config
        self.state = state
        self.routes = routes
        self.own = Routes()
        self.own.route("/healthz", self._healthz, methods=["GET"], auth=False)
        self.own.route("/readyz", self._readyz, methods=["GET"], auth=False)
        if config.openapi:
            self.own.route("/openapi.json", self._openapi, methods=["GET"], auth=False)
        self._openapi_cache: tuple[int, bytes] = (-1, b"")
        root = config.static_dir
        self.static = None if root is None else StaticFiles(root, config.static_cache_control)
        self.mounts = [AsgiBridge(prefix, app) for prefix, app in config.mounts]
        self.ws_paths = (config.ws_path, config.peers_path)
        chain: list[Middleware] = [RequestId(tracing), AccessLog()]
        if config.cors is not None:
            chain.append(Cors(config.cors))
        if config.rate_limit is not None:
            chain.append(Throttle(config.rate_limit))
        if config.auth is not None:
            chain.append(Authenticate(config.auth))
        chain.extend(config.middleware)
        self._chain = compose(chain, self._answer)

    async def __call__(self, request: Request) -> Response:
        started = perf_counter()
        route, params, allowed = self.routes.match(request.method, request.path)
        if route is None and not allowed:
            route, params, allowed = self.own.match(request.method, request.path)
        request.path_params = params
        state = request.state
        state["route"] = route
        if allowed:
            state["allow"] = allowed
        try:
            return await self._chain(request)
        except Exception as exc:  # a middleware's own failure (not Cancelled)
            return error_response(exc, request)
        finally:
            if route is not None and route.path not in ("/healthz", "/readyz"):
                label = "routes"
            else:
                label = route_of(request.path, self.ws_paths, self.static is not None)
            self.state.metrics.request(label, perf_counter() - started)

    async def _answer(self, request: Request) -> Response:
        route: Route | None = request.state["route"]
        if route is not None:
            try:
                return await route(request)
            except BadInput as exc:
                if exc.error is not None:
                    return validation_error(exc.error, request, exc.where, exc.name)
                return json_error(
                    422, "validation", str(exc), request, field=exc.name, where=exc.where
                )
            except msgspec.ValidationError as exc:
                return validation_error(exc, request)
            except Exception as exc:
                return error_response(exc, request)
        path = request.path
        allowed = request.state.get("allow")
        if allowed:
            message = f"{request.method} is not allowed on {path}"
            return json_error(
                405, "method-not-allowed", message, request, [("allow", ", ".join(allowed))]
            )
        for mount in self.mounts:
            if mount.covers(path):
                return await mount(request)
        if path in self.ws_paths:
            return json_error(426, "upgrade-required", "a WebSocket endpoint", request)
        if self.static is not None:
            if request.method not in ("GET", "HEAD"):
                message = f"{request.method} is not allowed on static files"
                return json_error(
                    405, "method-not-allowed", message, request, [("allow", "GET, HEAD")]
                )
            response = await self.static(request)
            if response is not None:
                return response
        return json_error(404, "not-found", f"nothing at {path}", request)

    # -- the gateway's own routes ------------------------------------------------

    async def _healthz(self) -> Response:
        body = msgspec.json.encode({"status": "alive", "node": self.state.node_id})
        return Response(body, 200, list(_NO_STORE), JSON)

    async def _readyz(self) -> Response:
        state = self.state
        ready = state.ready and not state.stopping
        body = {"status": "ready" if ready else "not-ready", "node": state.node_id}
        return Response(msgspec.json.encode(body), 200 if ready else 503, list(_NO_STORE), JSON)

    async def _openapi(self) -> Response:
        count, cached = self._openapi_cache
        if count != len(self.routes):  # routes can be added while serving
            config = self.config
            document = openapi_document(self.routes.routes, config.title, config.version)
            cached = msgspec.json.encode(document)
            self._openapi_cache = (len(self.routes), cached)
        return Response(cached, 200, [], JSON)
