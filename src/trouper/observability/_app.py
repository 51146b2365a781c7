"""The admin endpoint's ASGI application: a plain callable, no framework.

``AdminApp(node, token)`` can be served by any ASGI server; the admin
actor serves it with hypercorn's trio worker. Reads are open; actions
(``POST /api/actors/{path}/stop|kill|restart``) need the bearer token.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._api import ACTIONS, AdminAnswer, AdminQuery, AdminState, answer_anywhere, encode, error
from ._dashboard import Dashboard, is_dashboard
from ._metrics import CONTENT_TYPE, metrics_text

if TYPE_CHECKING:
    from ..runtime import Node

# Any, as in trouper.web: hypercorn's own ASGI types are unions of TypedDicts.
ASGIReceive = Any
ASGISend = Any

_READS = {
    "/api/node": "node",
    "/api/tree": "tree",
    "/api/cluster": "cluster",
    "/api/deadletters": "deadletters",
}
_MAX_QUERY = 4096


class AdminApp:
    """The ASGI 3 application of a node's admin endpoint."""

    def __init__(
        self,
        node: Node,
        token: str | None = None,
        *,
        state: AdminState | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.node = node
        # Mounted elsewhere, it shares the node's admin endpoint's state (its
        # recent dead letters) if there is one.
        running = getattr(node.admin, "state", None)
        self.state = state or running or AdminState(node.id, 100)
        self._token = None if token is None else token.encode()
        self.timeout = timeout
        self.dashboard = Dashboard(node, self.state, token is not None, timeout)

    async def __call__(
        self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend
    ) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            await self.dashboard.serve(scope, receive, send)

    async def _http(self, scope: Mapping[str, Any], send: ASGISend) -> None:
        method, path = scope["method"], scope["path"]
        raw_query: bytes = scope.get("query_string", b"")
        if len(raw_query) > _MAX_QUERY:
            await _reply(send, error(414, "bad-request", "query string too long"))
            return
        params = {k: v[-1] for k, v in parse_qs(raw_query.decode("latin-1")).items()}
        if method == "POST":
            await _reply(send, await self._action(scope, path, params))
        elif method not in ("GET", "HEAD"):
            await _reply(send, error(405, "method-not-allowed", f"{method} is not allowed"))
        elif path == "/healthz":
            await _reply(send, encode(200, {"status": "alive", "node": self.node.id}))
        elif path == "/readyz":
            ready, why = self._ready()
            body = {"status": "ready" if ready else "not-ready", "node": self.node.id}
            if why:
                body["reason"] = why
            await _reply(send, encode(200 if ready else 503, body))
        elif path == "/metrics":
            await self._metrics(send, params.get("node") or None)
        elif is_dashboard(path):
            await self._dashboard_file(path, scope.get("root_path", ""), send)
        else:
            await _reply(send, await self._read(path, params))

    def _ready(self) -> tuple[bool, str]:
        node = self.node
        user = node.kernel.cell_at("/user")
        if self.state.stopping or user is None or user.stopping:
            return False, "stopping"
        listen = getattr(getattr(node.remote, "config", None), "listen", ())
        if listen and not node.addresses:
            return False, "the remote layer is not listening yet"
        return True, ""

    async def _metrics(self, send: ASGISend, target: str | None) -> None:
        if target is None or target == self.node.id:
            body, content_type = metrics_text(self.node)
            await _send(send, 200, body, content_type)
            return
        # Another node's metrics, through the cluster (for `trouper top
        # --node`); Prometheus scrapes each node's own endpoint instead.
        query = AdminQuery("metrics")
        reply = await answer_anywhere(self.node, self.state, target, query, self.timeout)
        content_type = CONTENT_TYPE if reply.status == 200 else "application/json"
        await _send(send, reply.status, reply.body, content_type)

    async def _dashboard_file(self, path: str, root_path: str, send: ASGISend) -> None:
        found = await self.dashboard.file(path, root_path)
        if found is None:
            await _reply(send, error(404, "not-found", f"no such endpoint: {path}"))
        else:
            await _send(send, 200, *found)

    async def _read(self, path: str, params: dict[str, str]) -> AdminAnswer:
        target = params.get("node") or None
        kind = _READS.get(path)
        actor_path = "/"
        if kind is None and path.startswith("/api/actors/"):
            kind, actor_path = "actor", "/" + path[len("/api/actors/") :].strip("/")
        if kind is None:
            return error(404, "not-found", f"no such endpoint: {path}")
        if kind == "tree":
            actor_path = params.get("path", "/")
        try:
            query = AdminQuery(
                kind,
                actor_path,
                depth=int(params.get("depth", 16)),
                children=int(params.get("children", 100)),
                max_actors=int(params.get("max_actors", 2000)),
            )
        except ValueError:
            return error(400, "bad-request", "depth, children and max_actors are integers")
        return await answer_anywhere(self.node, self.state, target, query, self.timeout)

    async def _action(
        self, scope: Mapping[str, Any], path: str, params: dict[str, str]
    ) -> AdminAnswer:
        prefix = "/api/actors/"
        head, _, action = path.rstrip("/").rpartition("/")
        if not path.startswith(prefix) or action not in ACTIONS or len(head) <= len(prefix) - 1:
            return error(404, "not-found", f"no such action: POST {path}")
        if self._token is None:
            return error(
                403,
                "read-only",
                "this admin endpoint is read-only: start the node with admin_token= "
                "(or --admin-token-file) to allow stop, kill and restart",
            )
        if not self._authorized(scope):
            return error(401, "unauthorized", "a valid 'Authorization: Bearer TOKEN' is required")
        actor_path = "/" + head[len(prefix) :].strip("/")
        query = AdminQuery("action", actor_path, action=action)
        target = params.get("node") or None
        return await answer_anywhere(self.node, self.state, target, query, self.timeout)

    def _authorized(self, scope: Mapping[str, Any]) -> bool:
        assert self._token is not None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                scheme, _, given = bytes(value).partition(b" ")
                # Constant time: the comparison leaks no prefix of the token.
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self._token
                )
        return False


async def _reply(send: ASGISend, reply: AdminAnswer) -> None:
    await _send(send, reply.status, reply.body, "application/json")


async def _send(send: ASGISend, status: int, body: bytes, content_type: str) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="trouper"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
