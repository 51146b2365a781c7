"""``send_text``/``send_bytes``: one frame to many sessions, on this node or others."""

from __future__ import annotations

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url
from trio_websocket import WebSocketConnection as WebSocketConnectionClient
from web_helpers import Recorder, wait_actors

import trouper
import trouper.web as web
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession, open_gateway

PUBLIC = {
    "CORS",
    "FanOut",
    "GatewayHandle",
    "JWTAuth",
    "RateLimit",
    "Request",
    "Response",
    "Route",
    "Routes",
    "SendBytes",
    "SendText",
    "WebGateway",
    "WebSocketConnection",
    "WebSocketSession",
    "claims_of",
    "open_gateway",
    "send_bytes",
    "send_text",
    "start_gateway",
}


def test_public_names() -> None:
    assert set(web.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(web, name)


class Member(WebSocketSession):
    """Reports its ref; a text ``hold`` keeps its actor task busy until released."""

    def __init__(self, connection: WebSocketConnection, rec: Recorder, release: trio.Event) -> None:
        super().__init__(connection)
        self.rec = rec
        self.release = release

    async def on_connect(self) -> None:
        self.rec.add("connect", self.ctx.self_ref)

    async def on_stop(self) -> None:
        self.rec.add("stopping", self.ctx.self_ref)
        await super().on_stop()

    async def on_text(self, text: str) -> None:
        if text == "hold":
            self.rec.add("holding", self.ctx.self_ref)
            await self.release.wait()
            self.send_text("released")


class Plain(trouper.Actor):
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec

    @trouper.handler
    async def frame(self, msg: web.SendText) -> None:
        self.rec.add("plain", msg.text)


@trouper.message
class Refs(msgspec.Struct, frozen=True):
    refs: list[trouper.ActorRef]


class Directory(trouper.Actor):
    """Answers with the refs it was given: they cross the wire to the asker."""

    def __init__(self, refs: list[trouper.ActorRef]) -> None:
        self.refs = refs

    @trouper.handler
    async def get(self, msg: str) -> Refs:
        return Refs(self.refs)


async def test_one_frame_reaches_every_local_session_without_its_actor() -> None:
    rec, release = Recorder(), trio.Event()
    config = WebGateway(session=Member, session_args=(rec, release))
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            baseline = node.stats().actors
            async with (
                open_websocket_url(gw.ws_url) as one,
                open_websocket_url(gw.ws_url) as two,
                open_websocket_url(gw.ws_url) as three,
            ):
                await rec.wait_for(lambda: len(rec.of("connect")) == 3)
                refs = [event[1] for event in rec.of("connect")]
                # The first session's actor is busy in a handler: frames still go out.
                await one.send_message("hold")
                await rec.wait_for(lambda: len(rec.of("holding")) == 1)
                for n in range(5):
                    assert web.send_text(refs, f"frame {n}") == web.FanOut(3, 0, 0)
                assert web.send_bytes(refs, b"\x00\x01") == web.FanOut(3, 0, 0)
                for ws in (one, two, three):
                    assert [await ws.get_message() for _ in range(6)] == [
                        *(f"frame {n}" for n in range(5)),
                        b"\x00\x01",
                    ]
                release.set()
                assert await one.get_message() == "released"
                # another actor is told SendText; a dead session takes nothing
                plain = await node.spawn(Plain, rec)
                assert web.send_text([plain, *refs], "again") == web.FanOut(3, 1, 0)
                await node.stop(refs[2])
                assert web.send_text(refs, "twice") == web.FanOut(2, 0, 1)
                for ws in (one, two):
                    assert await ws.get_message() == "again"
                    assert await ws.get_message() == "twice"
                await rec.wait_for(lambda: rec.of("plain") == [("plain", "again")])
                await node.stop(plain)
            await wait_actors(node, baseline)


async def test_sessions_of_another_node_get_the_frame_through_their_gateway() -> None:
    rec, release = Recorder(), trio.Event()
    config = WebGateway(session=Member, session_args=(rec, release))
    cookie = b"fanout-cookie"
    with trio.fail_after(20):
        async with (
            trouper.open_node("web", listen=["tcp://127.0.0.1:0"], cookie=cookie) as host,
            open_gateway(host, config) as gw,
            trouper.open_node("sender", cookie=cookie) as sender,
        ):
            await sender.connect(host.addresses[0])
            await sender.wait_for_members(2, timeout=10)
            assert await sender.lookup("trouper.web@web", timeout=5) == gw.ref
            async with open_websocket_url(gw.ws_url) as one, open_websocket_url(gw.ws_url) as two:
                await rec.wait_for(lambda: len(rec.of("connect")) == 2)
                await host.spawn(Directory, [event[1] for event in rec.of("connect")], name="dir")
                directory = await sender.lookup("dir", timeout=5)
                refs = (await directory.ask("refs")).refs
                assert [ref.node_id for ref in refs] == ["web", "web"]
                # One message to the web node's gateway carries the frame for
                # both; the session whose actor is busy gets it all the same.
                await one.send_message("hold")
                await rec.wait_for(lambda: len(rec.of("holding")) == 1)
                for n in range(3):
                    assert web.send_text(refs, f"remote {n}") == web.FanOut(0, 2, 0)
                assert web.send_bytes(refs, b"bin") == web.FanOut(0, 2, 0)
                for ws in (one, two):
                    got = [await ws.get_message() for _ in range(4)]
                    assert got == ["remote 0", "remote 1", "remote 2", b"bin"]
                release.set()
                assert await one.get_message() == "released"
            # A node without a gateway: its actors are told SendText one by one.
            plain = await sender.spawn(Plain, rec, name="plain")
            remote_plain = await host.lookup("plain", timeout=5)
            assert web.send_text([remote_plain], "to plain") == web.FanOut(0, 1, 0)
            await rec.wait_for(lambda: ("plain", "to plain") in rec.events)
            await sender.stop(plain)


class Broadcaster(trouper.Actor):
    """Sends numbered 1 KiB frames to its sessions through the fast lane, 1 MB/s."""

    def __init__(self, sessions: list[trouper.ActorRef]) -> None:
        self.sessions = sessions

    async def on_start(self) -> None:
        self.ctx.start_soon(self.pump)

    async def pump(self) -> None:
        payload = "x" * 1024
        sent = 0
        while True:
            for _ in range(10):
                web.send_text(self.sessions, f"{sent} {payload}")
                sent += 1
            await trio.sleep(0.01)


async def test_a_slow_consumer_fed_by_the_fast_lane_is_cut_off_alone() -> None:
    rec, release = Recorder(), trio.Event()
    config = WebGateway(
        session=Member,
        session_args=(rec, release),
        outbox_size=64,
        slow_consumer_timeout=0.5,
        close_timeout=5.0,
    )
    received = 0
    reached: dict[int, trio.Event] = {200: trio.Event()}  # received count -> event

    async def fast_reader(ws: WebSocketConnectionClient) -> None:
        nonlocal received
        while True:
            message = await ws.get_message()
            assert int(message.split(" ", 1)[0]) == received  # in order, nothing dropped
            received += 1
            if received in reached:
                reached[received].set()

    # message_queue_size=1 and no get_message(): the slow client stops
    # reading its socket almost at once.
    with trio.fail_after(25):
        async with (
            trouper.open_node() as node,
            open_gateway(node, config) as gw,
            open_websocket_url(gw.ws_url, message_queue_size=1) as slow,
            open_websocket_url(gw.ws_url) as fast,
            trio.open_nursery() as nursery,
        ):
            await rec.wait_for(lambda: len(rec.of("connect")) == 2)
            nursery.start_soon(fast_reader, fast)
            broadcaster = await node.spawn(Broadcaster, [e[1] for e in rec.of("connect")])
            with trio.fail_after(5):
                await reached[200].wait()
            # the slow one is cut off after slow_consumer_timeout; reading what
            # is in the pipe then, its client finds the reason
            with trio.fail_after(5):
                await rec.wait_for(lambda: bool(rec.of("stopping")))
            assert len(rec.of("stopping")) == 1  # the fast one goes on
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await slow.get_message()
            assert info.value.reason.code == 1008
            assert info.value.reason.reason == "consumer-too-slow"
            more = reached[received + 100] = trio.Event()
            with trio.fail_after(5):
                await more.wait()  # the fast client keeps its pace
            await node.stop(broadcaster)
            nursery.cancel_scope.cancel()
