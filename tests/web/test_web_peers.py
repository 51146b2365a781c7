"""Other nodes through the gateway's port: ``WebGateway(peers_path=...)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
from web_helpers import Echo as EchoSession
from web_helpers import Recorder, wait_actors

import trouper
from trouper.web import WebGateway, open_gateway, start_gateway

COOKIE = b"web-peers-cookie"
PEERS = "/_trouper"
FAST: dict[str, Any] = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 2.0}


@trouper.message
class Ping(msgspec.Struct):
    n: int


class Pong(msgspec.Struct):
    n: int
    by: str


class Blob(msgspec.Struct):
    data: bytes


class Echo(trouper.Actor):
    def __init__(self) -> None:
        self.count = 0

    @trouper.handler
    async def ping(self, msg: Ping) -> Pong:
        self.count += 1
        return Pong(msg.n + 1, self.ctx.self_ref.node_id)

    @trouper.handler
    async def how_many(self, msg: str) -> int:
        return self.count

    @trouper.handler
    async def blob(self, msg: Blob) -> Blob:
        return Blob(msg.data[::-1])

    @trouper.handler
    async def numbers(self, msg: int) -> AsyncIterator[int]:
        for i in range(msg):
            yield i


async def test_a_node_connects_through_the_gateway_port() -> None:
    with trio.fail_after(30):
        async with (
            trouper.open_node("host", cookie=COOKIE) as host,
            open_gateway(host, WebGateway(peers_path=PEERS)) as gw,
            trouper.open_node("guest", cookie=COOKIE) as guest,
        ):
            assert gw.peers_url == gw.url.replace("http://", "ws://") + PEERS
            assert host.addresses == (gw.peers_url,)  # advertised: peers can dial it
            assert await guest.connect(gw.peers_url) == "host"
            await host.spawn(Echo, name="echo")
            ref = await guest.lookup("echo", timeout=5)
            assert ref.node_id == "host"
            assert await ref.ask(Ping(1)) == Pong(2, "host")
            for i in range(10):
                await ref.tell(Ping(i))
            assert await ref.ask("count") == 11
            async with ref.stream(50, window=4) as items:
                assert [i async for i in items] == list(range(50))
            big = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # 8 MiB each way
            assert (await ref.ask(Blob(big), timeout=20)).data == big[::-1]
            # ... and the other way round, over the same connection.
            await guest.spawn(Echo, name="echo-guest")
            back = await host.lookup("echo-guest", timeout=5)
            assert await back.ask(Ping(7)) == Pong(8, "guest")
            hosts = [m for m in guest.members() if m.node_id == "host"]
            assert hosts and gw.peers_url in hosts[0].addresses  # gossiped
            # The gateway's own HTTP carries on beside the peers.
            async with httpx.AsyncClient() as client:
                response = await client.get(gw.url + "/healthz")
                assert response.status_code == 200
                assert (await client.get(gw.url + PEERS)).status_code == 426


async def test_closing_the_gateway_drops_its_peers_and_its_address() -> None:
    with trio.fail_after(30):
        async with (
            trouper.open_node("host", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST) as host,
            trouper.open_node("guest", cookie=COOKIE, **FAST) as guest,
        ):
            gw = await start_gateway(host, peers_path=PEERS)
            assert gw.peers_url is not None
            assert host.addresses[-1] == gw.peers_url
            await guest.connect(gw.peers_url)
            await host.spawn(Echo, name="echo")
            ref = await guest.lookup("echo", timeout=5)
            assert await ref.ask(Ping(1)) == Pong(2, "host")
            with trio.fail_after(gw.config.graceful_timeout):  # no waiting for the peers
                await gw.aclose()
            assert gw.peers_url not in host.addresses
            assert len(host.addresses) == 1  # the tcp listener stays
            with pytest.raises(trouper.NodeDown):
                while True:  # the guest's redials fail, and the host is soon down for it
                    await ref.ask(Ping(2), timeout=5)
                    await trio.sleep(0.01)


async def test_text_on_the_peers_path_closes_that_connection() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("host", cookie=COOKIE) as host,
            open_gateway(host, WebGateway(peers_path=PEERS)) as gw,
            trouper.open_node("guest", cookie=COOKIE) as guest,
        ):
            assert gw.peers_url is not None
            async with open_websocket_url(gw.peers_url) as ws:
                await ws.send_message("hello?")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1003
            await guest.connect(gw.peers_url)  # real peers are still welcome
            await host.spawn(Echo, name="echo")
            assert await (await guest.lookup("echo", timeout=5)).ask(Ping(0)) == Pong(1, "host")


async def test_sessions_keep_their_own_message_limit() -> None:
    rec = Recorder()
    config = WebGateway(
        peers_path=PEERS, session=EchoSession, session_args=(rec,), max_message_size=1024
    )
    with trio.fail_after(20):
        async with trouper.open_node(cookie=COOKIE) as node, open_gateway(node, config) as gw:
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url) as ws:
                await ws.send_message("x" * 1024)  # at the limit: fine
                assert len(await ws.get_message()) == 1024
                await ws.send_message(b"x" * 1025)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1009
            await wait_actors(node, baseline)
            async with open_websocket_url(gw.ws_url) as ws:
                await ws.send_message("still here?")
                assert await ws.get_message() == "still here?"


async def test_a_peers_path_needs_a_cookie_and_its_own_path() -> None:
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            with pytest.raises(trouper.ConfigurationError, match="cookie"):
                await start_gateway(node, peers_path=PEERS)
    for bad in ("_trouper", "/ws"):
        with pytest.raises(trouper.ConfigurationError):
            WebGateway(peers_path=bad)
    with trio.fail_after(10):
        async with trouper.open_node(cookie=COOKIE) as node, open_gateway(node) as gw:
            assert gw.peers_url is None and node.addresses == ()
            with pytest.raises(ConnectionRejected):  # no peers path: an unknown endpoint
                async with open_websocket_url(gw.url.replace("http", "ws") + PEERS):
                    pass
