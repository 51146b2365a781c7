"""The live dashboard's server side: files, frames, throttle, bounds.

The throttle and the slow-viewer bound are counted, not timed: the WebSocket
is driven in memory (ASGI events) under the autojump clock, where a frame
every 0.25 s costs no wall time, and once more over a real socket with a
viewer that stops reading.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import wsproto
import wsproto.events
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

import trouper
from trouper.observability._api import AdminState
from trouper.observability._dashboard import MAX_VIEWERS, Dashboard, fit
from trouper.observability._dashview import (
    MAX_EXPANDED,
    MAX_FRAME,
    MAX_PATH,
    WINDOW,
    RateMeter,
    Throttle,
    links,
    parse_request,
)

COOKIE = b"dashboard-test-cookie"


class Worker(trouper.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


class Parent(trouper.Actor):
    def __init__(self, n: int) -> None:
        self.n = n

    async def on_start(self) -> None:
        for _ in range(self.n):
            await self.ctx.spawn(Worker)


class FakeSocket:
    """The ASGI side of a WebSocket, in memory: what the viewer says, and
    every event the server sends. It acknowledges each frame, as the page
    does, except past ``stall_after`` frames (a viewer that stopped reading)."""

    def __init__(self, stall_after: int | None = None) -> None:
        self.incoming, self._out = trio.open_memory_channel[dict[str, Any]](100)
        self.incoming.send_nowait({"type": "websocket.connect"})
        self.events: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.stall_after = stall_after
        self.new_frame = trio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self._out.receive()

    async def send(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event["type"] == "websocket.send":
            frame = json.loads(event["text"])
            self.frames.append(frame)
            if self.stall_after is None or len(self.frames) <= self.stall_after:
                self.say({"ack": frame["seq"]})
            self.new_frame.set()
            self.new_frame = trio.Event()

    def say(self, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.incoming.send_nowait({"type": "websocket.receive", "text": text})


def dashboard_of(node: trouper.Node) -> Dashboard:
    return Dashboard(node, AdminState(node.id, 10), actions=False, timeout=5.0)


def view(frame: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in frame["nodes"] if n["node"] == node_id)


def child(entry: dict[str, Any], path: str) -> dict[str, Any]:
    return next(c for c in entry["children"] if c["path"] == path)


async def test_frames_are_throttled_to_the_configured_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node("solo") as node:
        dashboard = dashboard_of(node)
        ws = FakeSocket()
        with trio.move_on_after(10.0):
            await dashboard.serve(
                {"type": "websocket", "path": "/dashboard/ws"}, ws.receive, ws.send
            )
        # 4 frames a second for 10 s: the first at once, then one per 0.25 s.
        assert ws.events[0] == {"type": "websocket.accept"}
        assert 40 <= len(ws.frames) <= 41
        assert [f["seq"] for f in ws.frames] == list(range(1, len(ws.frames) + 1))
        assert dashboard.viewers == 0 and dashboard.dropped == 0


async def test_a_viewer_that_does_not_acknowledge_is_dropped_after_its_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node("solo") as node:
        dashboard = dashboard_of(node)
        ws = FakeSocket(stall_after=1)
        with trio.fail_after(60):
            await dashboard.serve(
                {"type": "websocket", "path": "/dashboard/ws"}, ws.receive, ws.send
            )
        # One frame acknowledged, then WINDOW more sent and never
        # acknowledged; STALL ticks later the viewer is dropped.
        assert len(ws.frames) == 1 + WINDOW
        assert dashboard.frames == 1 + WINDOW
        assert dashboard.dropped == 1 and dashboard.viewers == 0
        assert ws.events[-1] == {
            "type": "websocket.close",
            "code": 1008,
            "reason": "consumer-too-slow",
        }


async def test_bad_requests_are_reported_to_that_viewer_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node("solo") as node:
        await node.spawn(Parent, 3, name="p")
        dashboard = dashboard_of(node)
        bad, good = FakeSocket(), FakeSocket()
        scope = {"type": "websocket", "path": "/dashboard/ws"}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dashboard.serve, scope, bad.receive, bad.send)
            nursery.start_soon(dashboard.serve, scope, good.receive, good.send)
            good.say({"expand": [["solo", "/user/p"]]})
            bad.say({"expand": [["solo", "/user/p"]]})
            bad.say("{not json")
            await trio.testing.wait_all_tasks_blocked()
            await bad.new_frame.wait()
            assert "not JSON" in bad.frames[-1]["error"]
            # The unusable message kept the viewer's previous expansion.
            assert bad.frames[-1]["expanded"] == [["solo", "/user/p"]]
            bad.say({"expand": [["solo", f"/user/a{i}"] for i in range(MAX_EXPANDED + 5)]})
            await trio.testing.wait_all_tasks_blocked()
            await bad.new_frame.wait()
            assert f"at most {MAX_EXPANDED}" in bad.frames[-1]["error"]
            assert len(bad.frames[-1]["expanded"]) == MAX_EXPANDED
            bad.say("x" * 70_000)
            await trio.testing.wait_all_tasks_blocked()
            assert bad.events[-1]["type"] == "websocket.close" and bad.events[-1]["code"] == 1009
            await good.new_frame.wait()
            frame = good.frames[-1]
            assert frame["error"] is None and frame["viewers"] == 1
            assert list(view(frame, "solo")["expanded"]) == ["/user/p"]
            nursery.cancel_scope.cancel()


async def test_viewers_share_the_answers_of_one_frame_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node("solo") as node:
        await node.spawn(Parent, 1000, name="big")
        scope = {"type": "websocket", "path": "/dashboard/ws"}

        async def watch(viewers: int) -> tuple[Dashboard, list[FakeSocket]]:
            dashboard = dashboard_of(node)
            sockets = [FakeSocket() for _ in range(viewers)]
            with trio.move_on_after(5.0):
                async with trio.open_nursery() as nursery:
                    for ws in sockets:
                        nursery.start_soon(dashboard.serve, scope, ws.receive, ws.send)
            return dashboard, sockets

        alone, (one,) = await watch(1)
        shared, four = await watch(4)
        assert all(len(ws.frames) == len(one.frames) for ws in four)
        # Four viewers, four times the frames, but the tree is walked (and
        # the node, the cluster and the dead letters read) once per frame
        # time: only the cheap class totals are read by each viewer.
        assert alone.answered < shared.answered < 2 * alone.answered


async def test_viewers_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    async with trouper.open_node("solo") as node:
        dashboard = dashboard_of(node)
        scope = {"type": "websocket", "path": "/dashboard/ws"}
        sockets = [FakeSocket() for _ in range(MAX_VIEWERS + 1)]
        async with trio.open_nursery() as nursery:
            for ws in sockets:
                nursery.start_soon(dashboard.serve, scope, ws.receive, ws.send)
            await trio.testing.wait_all_tasks_blocked()
            assert dashboard.viewers == MAX_VIEWERS
            refused = [ws for ws in sockets if ws.events[0]["type"] == "websocket.close"]
            assert len(refused) == 1 and refused[0].events == [
                {"type": "websocket.close", "code": 1013}
            ]
            nursery.cancel_scope.cancel()


async def test_ten_thousand_actors_are_aggregated_by_class_until_expanded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trouper.open_node("solo") as node:
        await node.spawn(Parent, 10_000, name="big")
        dashboard = dashboard_of(node)
        ws = FakeSocket()
        scope = {"type": "websocket", "path": "/dashboard/ws"}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dashboard.serve, scope, ws.receive, ws.send)
            await ws.new_frame.wait()
            collapsed = view(ws.frames[-1], "solo")
            big = child(collapsed["roots"][0], "/user/big")
            assert big["children"] == [] and big["children_total"] == 10_000
            assert [(g["count"], g["states"]) for g in big["more"]] == [
                (10_000, {"running": 10_000})
            ]
            assert len(json.dumps(ws.frames[-1])) < 20_000
            ws.say({"expand": [["solo", "/user/big"]]})
            await trio.testing.wait_all_tasks_blocked()
            await ws.new_frame.wait()
            listing = view(ws.frames[-1], "solo")["expanded"]["/user/big"]
            assert len(listing["children"]) == 100
            assert listing["more"][0]["count"] == 9_900
            assert len(json.dumps(ws.frames[-1])) < 100_000
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    async with (
        trouper.open_node(
            "n0", listen="tcp://127.0.0.1:0", cookie=COOKIE, admin="127.0.0.1:0"
        ) as a,
        trouper.open_node(
            "n1", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE, admin="127.0.0.1:0"
        ) as b,
    ):
        await a.wait_for_members(2, timeout=10)
        await b.wait_for_members(2, timeout=10)
        yield a, b


async def next_frame(ws: WebSocketConnection, ok: Any) -> dict[str, Any]:
    """Frames until ``ok(frame)``, each acknowledged as the page does; the
    caller's fail_after bounds it."""
    while True:
        frame: dict[str, Any] = json.loads(await ws.get_message())
        await ws.send_message(json.dumps({"ack": frame["seq"]}))
        if ok(frame):
            return frame


async def test_a_frame_shows_the_whole_cluster_through_one_node() -> None:
    with trio.fail_after(40):
        async with (
            two_nodes() as (a, b),
            httpx.AsyncClient(base_url=f"http://{a.admin_address}") as http,
        ):
            page = await http.get("/dashboard")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert '<script src="/dashboard/dashboard.js">' in page.text
            for name in ("dashboard.js", "dashboard.css"):
                assert (await http.get(f"/dashboard/{name}")).status_code == 200
            assert (await http.get("/dashboard/nothing.js")).status_code == 404
            remote = await b.spawn(Parent, 5, name="p")
            async with open_websocket_url(f"ws://{a.admin_address}/dashboard/ws") as ws:
                await ws.send_message(json.dumps({"expand": [["n1", "/user/p"]]}))
                frame = await next_frame(ws, lambda f: "/user/p" in view(f, "n1")["expanded"])
                assert {m["node"]: m["status"] for m in frame["members"]} == {
                    "n0": "up",
                    "n1": "up",
                }
                assert frame["links"] == [["n0", "n1"]]
                listing = view(frame, "n1")["expanded"]["/user/p"]
                assert len(listing["children"]) == 5
                # Messages per second: traffic to n1's workers shows as a
                # rate of their class, on n1.
                worker = f"{Worker.__module__}.{Worker.__qualname__}"
                target = await b.spawn(Worker, name="busy")
                while True:  # the test's fail_after bounds it
                    for i in range(50):
                        await target.ask(i)
                    n1 = view(await next_frame(ws, bool), "n1")
                    # A frame may still be built from answers taken before
                    # "busy" was spawned (viewers share them for a frame time).
                    roots = n1["roots"][0]["children"]
                    busy = next((c for c in roots if c["path"] == "/user/busy"), None)
                    if busy is not None and n1["classes"].get(worker, 0) > 0 and busy["rate"] > 0:
                        break
                assert child(n1["roots"][0], "/user/p")["rate"] == 0
                assert n1["rate"] >= n1["classes"][worker]
                await b.stop(remote)
                await remote.tell("lost")
                frame = await next_frame(ws, lambda f: f["deadletters"])
                assert frame["deadletters"][0]["node"] == "n1"
                assert frame["deadletters"][0]["recipient"] == "/user/p"


async def test_the_dashboard_mounted_in_the_web_gateway_keeps_its_prefix() -> None:
    from trouper.observability import AdminApp
    from trouper.web import WebGateway, open_gateway

    with trio.fail_after(20):
        async with trouper.open_node("gw") as node:
            await node.spawn(Worker, name="w")
            config = WebGateway(mounts={"/admin": AdminApp(node)})
            async with (
                open_gateway(node, config) as gateway,
                httpx.AsyncClient(base_url=gateway.url) as http,
            ):
                page = (await http.get("/admin/dashboard")).text
                assert '<script src="/admin/dashboard/dashboard.js">' in page
                assert (await http.get("/admin/dashboard/dashboard.js")).status_code == 200
                address = gateway.url.split("://", 1)[1]
                async with open_websocket_url(f"ws://{address}/admin/dashboard/ws") as ws:
                    frame = await next_frame(ws, bool)
                    user = view(frame, "gw")["roots"][0]
                    assert child(user, "/user/w")["state"] == "running"
                    assert frame["actions"] is False


async def test_viewers_are_told_when_the_endpoint_stops() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("solo", admin="127.0.0.1:0") as node,
            open_websocket_url(f"ws://{node.admin_address}/dashboard/ws") as ws,
        ):
            await next_frame(ws, bool)
            await node.admin.aclose()
            with pytest.raises(ConnectionClosed) as closed:
                await next_frame(ws, lambda f: False)
            assert closed.value.reason.code == 1001


def test_requests_parse_into_bounded_expansions() -> None:
    ok = parse_request('{"expand": [["n0", "/user/a/"], ["n0", "/user/a"], ["n1", "/x"]]}')
    assert ok.paths == (("n0", "/user/a"), ("n1", "/x")) and ok.error is None
    partly = parse_request(json.dumps({"expand": [["n0", "user"], ["n0", "/ok"], 5]}))
    assert partly.paths == (("n0", "/ok"),)
    assert partly.error is not None and "is not [node, /path]" in partly.error
    assert parse_request("[]").paths is None
    assert parse_request(json.dumps({"expand": [["n0", "/" + "a" * MAX_PATH]]})).paths == ()


@given(
    st.recursive(
        st.none() | st.text() | st.integers(), lambda x: st.lists(x) | st.dictionaries(st.text(), x)
    )
)
def test_any_json_parses_into_a_bounded_expansion_or_an_error(body: Any) -> None:
    for candidate in (body, {"expand": body}):
        result = parse_request(json.dumps(candidate))
        if result.paths is None:
            assert result.error
        else:
            assert len(result.paths) <= MAX_EXPANDED
            assert all(p.startswith("/") and len(p) <= MAX_PATH for _, p in result.paths)


@given(st.lists(st.floats(min_value=0, max_value=1e6), max_size=50), st.floats(0.5, 60))
def test_the_throttle_never_lets_two_frames_closer_than_its_interval(
    times: list[float], fps: float
) -> None:
    throttle = Throttle(fps)
    sent: list[float] = []
    for now in sorted(times):
        if throttle.wait(now) == 0:
            throttle.sent(now)
            sent.append(now)
    assert all(b - a >= 1 / fps - 1e-9 for a, b in itertools.pairwise(sent))
    if times:
        assert sent  # the first frame goes at once


def test_a_frame_too_large_leaves_out_the_last_expanded_listings_first() -> None:
    big = {"children": [{"path": "/x" * 100}] * 1000}
    frame: dict[str, Any] = {
        "error": None,
        "nodes": [{"node": "n0", "expanded": {"/a": big, "/b": big, "/c": {"children": []}}}],
    }
    text = fit(frame, (("n0", "/a"), ("n0", "/c"), ("n0", "/b")))
    assert len(text) <= MAX_FRAME
    assert list(json.loads(text)["nodes"][0]["expanded"]) == ["/a", "/c"]
    assert "collapse some" in json.loads(text)["error"]
    small: dict[str, Any] = {"error": None, "nodes": []}
    assert json.loads(fit(small, (("n0", "/a"),))) == small


def test_rates_and_links() -> None:
    meter = RateMeter()
    assert meter.update({"a": 10}, 1.0) == {"a": 0.0}
    assert meter.update({"a": 30, "b": 5}, 3.0) == {"a": 10.0, "b": 0.0}
    # Only the latest sample's keys are kept: "a" starts over when it comes back.
    assert meter.update({"b": 9}, 5.0) == {"b": 2.0}
    assert meter.update({"a": 40, "b": 9}, 6.0) == {"a": 0.0, "b": 0.0}
    assert meter.update({"a": 10}, 7.0) == {"a": 0.0}  # a new incarnation counts from 0
    assert meter.update({"a": 12}, 7.0) == {"a": 0.0}  # no time passed: no rate
    views = {
        "a": [{"node": "a", "connected": True}, {"node": "b", "connected": True}],
        "b": [{"node": "a", "connected": False}, {"node": "c", "connected": False}],
    }
    assert links(views) == [["a", "b"]]


async def test_a_real_viewer_that_stops_reading_is_dropped_and_others_go_on() -> None:
    with trio.fail_after(60):
        async with trouper.open_node("solo", admin="127.0.0.1:0") as node:
            await node.spawn(Parent, 500, name="p")
            assert node.admin_address is not None
            host, port = node.admin_address.rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
            await stream.send_all(client.send(wsproto.events.Request(host, "/dashboard/ws")))
            accepted = False
            while not accepted:
                client.receive_data(await stream.receive_some(4096))
                events = list(client.events())
                accepted = any(isinstance(e, wsproto.events.AcceptConnection) for e in events)
            message = wsproto.events.TextMessage(json.dumps({"expand": [["solo", "/user/p"]]}))
            await stream.send_all(client.send(message))
            # From here on this viewer reads nothing, and so acknowledges nothing.
            async with open_websocket_url(f"ws://{node.admin_address}/dashboard/ws") as ws:
                frame = await next_frame(ws, lambda f: f["dropped"] == 1)
                assert frame["error"] is None
                more = await next_frame(ws, lambda f: f["viewers"] == 1)  # this one goes on
                assert more["seq"] > frame["seq"]
            # The slow viewer, reading at last, finds WINDOW frames and the close.
            frames: list[dict[str, Any]] = []
            closed: wsproto.events.CloseConnection | None = None
            while closed is None:
                data = await stream.receive_some(65536)
                assert data, "the server hung up without a close frame"
                client.receive_data(data)
                for event in client.events():
                    if isinstance(event, wsproto.events.TextMessage):
                        frames.append(json.loads(event.data))
                    elif isinstance(event, wsproto.events.CloseConnection):
                        closed = event
            assert (closed.code, closed.reason) == (1008, "consumer-too-slow")
            assert [f["seq"] for f in frames] == list(range(1, WINDOW + 1))
            await stream.aclose()
