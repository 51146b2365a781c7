"""The live dashboard: ``/dashboard`` (a page, its script and style, package
data) and ``/dashboard/ws`` (a WebSocket of frames) in the admin endpoint's
ASGI application.

Each viewer gets at most ``FPS`` frames a second, and only while fewer than
``WINDOW`` frames are unacknowledged; a viewer that acknowledges nothing for
``STALL`` ticks is dropped (close code 1008, ``consumer-too-slow``), as the web
gateway drops slow consumers. A frame is built from the admin API's own
answers (``answer_anywhere``: this node directly, the others through their
admin agents), so the page sees exactly what ``/api/*`` says.
The WebSocket only reads: stop, kill and restart are the token-guarded POST
actions, called by the page itself.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

import trio

from ._api import AdminQuery, AdminState, answer_anywhere
from ._dashview import (
    CHILDREN,
    FPS,
    MAX_CLIENT_MESSAGE,
    MAX_FRAME,
    MAX_NODES,
    STALL,
    WINDOW,
    NodePath,
    RateMeter,
    Throttle,
    add_rates,
    links,
    merge_letters,
    parse_request,
)

if TYPE_CHECKING:
    from ..runtime import Node

log = logging.getLogger("trouper.admin.dashboard")

ASGIReceive = Any
ASGISend = Any

#: Viewers one admin endpoint serves at once; a further one is refused (1013).
MAX_VIEWERS: Final = 16
#: Cached answers past this many, the stale ones are dropped (the cache
#: holds what the viewers asked within one frame time).
_CACHE_PRUNE: Final = 256

_FILES: Final = {
    "/dashboard": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
WS_PATH: Final = "/dashboard/ws"


def is_dashboard(path: str) -> bool:
    return path in _FILES or path == WS_PATH


class Dashboard:
    """The dashboard of one admin endpoint: its files and its viewers."""

    def __init__(
        self,
        node: Node,
        state: AdminState,
        actions: bool,
        timeout: float,
        fps: float = FPS,
    ) -> None:
        self.node = node
        self.state = state
        self.actions = actions
        self.timeout = timeout
        self.fps = fps
        self.viewers = 0
        self.dropped = 0  # viewers dropped as too slow, since the endpoint started
        self.frames = 0
        self.answered = 0  # queries answered (not from the cache)
        self._files: dict[str, bytes] = {}
        # Answers shared by the viewers for one frame time: ten viewers of a
        # node with 10,000 actors walk its tree once per frame, not ten times.
        self._cache: dict[tuple[str, AdminQuery], tuple[float, bytes]] = {}

    async def ask(
        self, node_id: str, query: AdminQuery, fresh: bool = False
    ) -> tuple[dict[str, Any], float]:
        """The admin API's answer to ``query`` about ``node_id`` and when it
        was made: at most one frame time ago (``fresh``: now)."""
        now = trio.current_time()
        key = (node_id, query)
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < 1.0 / self.fps and not fresh:
            now, body = hit
        else:
            reply = await answer_anywhere(self.node, self.state, node_id, query, self.timeout)
            body = reply.body
            now = trio.current_time()
            self.answered += 1
            if len(self._cache) >= _CACHE_PRUNE:
                frame_time = 1.0 / self.fps
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < frame_time}
            self._cache[key] = (now, body)
        answer: dict[str, Any] = json.loads(body)  # each viewer its own copy
        return answer, now

    async def file(self, path: str, root_path: str = "") -> tuple[bytes, str] | None:
        """A static file's bytes and content type (read once, in a thread).
        The page's own links carry ``root_path``: mounted under a prefix
        (the web gateway's ``mounts``), it still finds its script."""
        entry = _FILES.get(path)
        if entry is None:
            return None
        name, content_type = entry
        data = self._files.get(name)
        if data is None:
            where = resources.files(__package__ or "trouper.observability") / "dashboard" / name
            data = self._files[name] = await trio.to_thread.run_sync(where.read_bytes)
        if root_path and name == "index.html":
            prefix = html.escape(root_path.rstrip("/"), quote=True).encode()
            data = data.replace(b'"/dashboard/', b'"' + prefix + b"/dashboard/")
        return data, content_type

    async def serve(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        """One WebSocket: accept, send frames, drop it if it does not read."""
        if (await receive())["type"] != "websocket.connect":
            return
        if scope["path"] != WS_PATH or self.state.stopping:
            await send({"type": "websocket.close", "code": 1000})  # before accept: HTTP 403
            return
        if self.viewers >= MAX_VIEWERS:
            await send({"type": "websocket.close", "code": 1013})
            return
        await send({"type": "websocket.accept"})
        self.viewers += 1
        try:
            await Viewer(self, receive, send).run()
        finally:
            self.viewers -= 1


class Viewer:
    """One WebSocket of the dashboard: a reader (the viewer's expansions and
    acknowledgements) and the frame loop, which sends a frame per tick while
    fewer than ``WINDOW`` are unacknowledged."""

    def __init__(self, dashboard: Dashboard, receive: ASGIReceive, send: ASGISend) -> None:
        self.dashboard = dashboard
        self.receive = receive
        self.send = send
        self.expanded: tuple[NodePath, ...] = ()
        self.error: str | None = None
        self.close: tuple[int, str] | None = None
        # Per node shown: the listings' meter and the classes' meter.
        self.meters: dict[str, tuple[RateMeter, RateMeter]] = {}
        self.seq = 0  # frames sent
        self.acked = 0  # the highest frame the viewer acknowledged

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, nursery.cancel_scope)
            await self._produce()
            nursery.cancel_scope.cancel()
        if self.close is not None:
            code, reason = self.close
            # The close frame is a few bytes and the window bounds what is
            # unread; the timeout is a last guard.
            with trio.move_on_after(1.0):
                await self.send({"type": "websocket.close", "code": code, "reason": reason})

    async def _read(self, done: trio.CancelScope) -> None:
        while True:
            event = await self.receive()
            if event["type"] != "websocket.receive":
                break  # websocket.disconnect
            text = event.get("text") or event.get("bytes") or ""
            if len(text) > MAX_CLIENT_MESSAGE:
                self.close = (1009, f"a message is at most {MAX_CLIENT_MESSAGE} bytes")
                break
            request = parse_request(text)
            if request.ack is not None:
                self.acked = max(self.acked, min(request.ack, self.seq))
            if request.paths is not None:
                self.expanded = request.paths
            if request.paths is not None or request.error is not None:
                self.error = request.error
        done.cancel()

    async def _produce(self) -> None:
        dashboard = self.dashboard
        throttle = Throttle(dashboard.fps)
        missed = 0
        while not dashboard.state.stopping:
            await trio.sleep(throttle.wait(trio.current_time()))
            throttle.sent(trio.current_time())
            if self.seq - self.acked >= WINDOW:
                missed += 1
                if missed >= STALL:
                    dashboard.dropped += 1
                    self.close = (1008, "consumer-too-slow")
                    log.info("dashboard: a viewer that does not read was dropped")
                    return
                continue
            missed = 0
            frame = await self.frame()
            await self.send({"type": "websocket.send", "text": fit(frame, self.expanded)})
            dashboard.frames += 1
        self.close = (1001, "the admin endpoint is stopping")

    async def frame(self) -> dict[str, Any]:
        """What the page shows now (see docs/observability.md, "Dashboard")."""
        dashboard = self.dashboard
        node = dashboard.node
        members = (await self._ask(node.id, AdminQuery("cluster")))["members"]
        ids = [m["node"] for m in members if m["status"] == "up"][:MAX_NODES]
        views: dict[str, dict[str, Any]] = {}
        async with trio.open_nursery() as nursery:
            for node_id in ids:
                nursery.start_soon(self._node_view, node_id, views)
        for gone in set(self.meters) - set(ids):
            del self.meters[gone]
        by_id = {m["node"]: m for m in members}
        nodes = [views[i] for i in ids if i in views]
        for node_id, member in by_id.items():
            if node_id not in views:
                nodes.append({"node": node_id, "status": member["status"]})
        self.seq += 1
        return {
            "type": "frame",
            "seq": self.seq,
            "node": node.id,
            "actions": dashboard.actions,
            "fps": dashboard.fps,
            "viewers": dashboard.viewers,
            "dropped": dashboard.dropped,
            "members": members,
            "links": links({i: v.get("members", []) for i, v in views.items()}),
            "nodes": nodes,
            "deadletters": merge_letters({i: v.pop("letters", []) for i, v in views.items()}),
            "expanded": [list(pair) for pair in self.expanded],
            "error": self.error,
        }

    async def _node_view(self, node_id: str, views: dict[str, dict[str, Any]]) -> None:
        status = "up"
        view: dict[str, Any] = {"node": node_id}
        with trio.move_on_after(self.dashboard.timeout) as scope:
            info = await self._ask(node_id, AdminQuery("node"))
            if "error" in info:
                status = "unreachable"
                view["error"] = info["message"]
            else:
                # The class totals are cheap: read afresh, each viewer its rates.
                totals, totals_at = await self.dashboard.ask(node_id, AdminQuery("rates"), True)
                query = AdminQuery("tree", "/", depth=1, children=CHILDREN)
                tree, tree_at = await self.dashboard.ask(node_id, query)
                letters = await self._ask(node_id, AdminQuery("deadletters"))
                cluster = await self._ask(node_id, AdminQuery("cluster"))
                view.update(
                    stats=info.get("stats", {}),
                    roots=tree.get("roots", []),
                    members=cluster.get("members", []),
                    letters=letters.get("recent", []),
                    dead_letters=letters.get("count", 0),
                    expanded=await self._expanded(node_id),
                )
                meters = self.meters.setdefault(node_id, (RateMeter(), RateMeter()))
                add_rates(meters, view, totals.get("classes", {}), (tree_at, totals_at))
        if scope.cancelled_caught:
            status = "unreachable"
            view["error"] = "no answer in time"
        view["status"] = status
        views[node_id] = view

    async def _expanded(self, node_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for on, path in self.expanded:
            if on == node_id and path not in ("/user", "/system"):
                query = AdminQuery("tree", path, depth=1, children=CHILDREN)
                answer = await self._ask(node_id, query)
                if answer.get("roots"):
                    out[path] = answer["roots"][0]
        return out

    async def _ask(self, node_id: str, query: AdminQuery) -> dict[str, Any]:
        return (await self.dashboard.ask(node_id, query))[0]


def fit(frame: dict[str, Any], expanded: tuple[NodePath, ...]) -> str:
    """The frame as JSON, at most ``MAX_FRAME`` bytes: expanded listings are
    left out, the last expanded first, until it fits."""
    text = json.dumps(frame)
    views = {view["node"]: view for view in frame["nodes"]}
    left = list(expanded)
    while len(text) > MAX_FRAME and left:
        node_id, path = left.pop()
        view = views.get(node_id, {})
        if view.get("expanded", {}).pop(path, None) is not None:
            frame["error"] = (
                f"the frame was over {MAX_FRAME} bytes: some expanded actors are left out "
                "(collapse some)"
            )
            text = json.dumps(frame)
    return text
