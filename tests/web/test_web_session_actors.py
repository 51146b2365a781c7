"""Sessions are actors: other actors message them; any failure is theirs alone."""

from __future__ import annotations

import logging

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
from web_helpers import Recorder, wait_actors

import trouper
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession, open_gateway


@pytest.fixture(autouse=True)
def quiet_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="trouper")


class Say(msgspec.Struct, frozen=True):
    text: str


class Listener(WebSocketSession):
    """Registers under a name; forwards ``Say`` to its client; ``Say("crash")`` fails."""

    def __init__(self, connection: WebSocketConnection, rec: Recorder) -> None:
        super().__init__(connection)
        self.rec = rec

    async def on_connect(self) -> None:
        self.rec.add("connect", self.ctx.self_ref, dict(self.scope)["path"])

    @trouper.handler
    async def say(self, msg: Say) -> None:
        if msg.text == "crash":
            raise RuntimeError("a handler of the session failed")
        self.send_text(msg.text)

    async def on_disconnect(self, code: int) -> None:
        self.rec.add("disconnect", self.ctx.self_ref, code)


class RefusesToStart(WebSocketSession):
    async def on_start(self) -> None:
        raise OSError("no database")


class FailsToConnect(WebSocketSession):
    async def on_connect(self) -> None:
        raise ValueError("bad handshake data")


async def test_other_actors_talk_to_the_client_through_the_session() -> None:
    rec = Recorder()
    config = WebGateway(session=Listener, session_args=(rec,))
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url) as one, open_websocket_url(gw.ws_url) as two:
                await rec.wait_for(lambda: len(rec.of("connect")) == 2)
                (_, first, path), (_, second, _) = rec.of("connect")
                assert path == "/ws"
                await first.tell(Say("to one"))
                await second.tell(Say("to two"))
                assert await one.get_message() == "to one"
                assert await two.get_message() == "to two"
                # a failure in any handler of a session: that socket closes with 1011
                await first.tell(Say("crash"))
                with pytest.raises(ConnectionClosed) as info:
                    await one.get_message()
                assert info.value.reason.code == 1011
                await second.tell(Say("still on"))
                assert await two.get_message() == "still on"
                with pytest.raises(trouper.ActorDead):
                    await first.ask(Say("anyone?"))
            await wait_actors(node, baseline)
            assert node.stats().restarts == 0


async def test_a_session_that_cannot_start_rejects_the_handshake() -> None:
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, WebGateway(session=RefusesToStart)) as gw,
        ):
            baseline = node.stats().actors
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(gw.ws_url):
                    pass
            assert info.value.status_code == 403
            assert node.stats().actors == baseline


async def test_a_failing_on_connect_closes_1011() -> None:
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, WebGateway(session=FailsToConnect)) as gw,
        ):
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1011
            await wait_actors(node, baseline)


async def test_websocket_on_another_path_is_refused(web_server: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node) as gw:
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(gw.url.replace("http", "ws") + "/elsewhere"):
                    pass
            # hypercorn refuses with 403; the fast path has no endpoint there: 404
            assert info.value.status_code == (403 if web_server == "hypercorn" else 404)
