"""A client that stops reading is cut off; everyone else keeps their pace."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionClosed, connect_websocket_url, open_websocket_url
from trio_websocket import WebSocketConnection as WebSocketConnectionClient
from web_helpers import Recorder, wait_actors

import trouper
from trouper.web import (
    WebGateway,
    WebSocketConnection,
    WebSocketSession,
    open_gateway,
    start_gateway,
)


class Flood(WebSocketSession):
    """Pushes ``burst`` 1 KiB messages every 10 ms (1 MB/s), whoever keeps up or not."""

    burst = 10

    def __init__(self, connection: WebSocketConnection, rec: Recorder) -> None:
        super().__init__(connection)
        self.rec = rec

    async def on_connect(self) -> None:
        self.rec.add("connect", self.ctx.self_ref)
        self.ctx.start_soon(self.pump)

    async def pump(self) -> None:
        payload = "x" * 1024
        attempt = 0
        while True:
            for _ in range(self.burst):
                self.send_text(f"{attempt} {payload}")  # numbered: a client sees drops
                attempt += 1
            await trio.sleep(0.01)

    async def on_stop(self) -> None:  # an override that keeps the base behaviour
        self.rec.add("stopping", self.ctx.self_ref, self.dropped)
        await super().on_stop()

    async def on_disconnect(self, code: int) -> None:
        self.rec.add("disconnect", self.ctx.self_ref, code)


class Torrent(Flood):
    """10 MB/s: fills a client's socket buffers in a blink."""

    burst = 100


class Boulders(WebSocketSession):
    """Pushes 256 KiB binary frames, 4 every 10 ms (100 MB/s), and notes
    the most bytes its outbox ever held."""

    def __init__(self, connection: WebSocketConnection, rec: Recorder) -> None:
        super().__init__(connection)
        self.rec = rec
        self.peak = 0

    async def on_connect(self) -> None:
        self.ctx.start_soon(self.pump)

    async def pump(self) -> None:
        boulder = b"x" * (256 * 1024)
        while True:
            for _ in range(4):
                self.send_bytes(boulder)
                self.peak = max(self.peak, self.queued_bytes)
            await trio.sleep(0.01)

    async def on_stop(self) -> None:
        self.rec.add("stopping", self.peak, self.queued, self.dropped)
        await super().on_stop()


class OneBoulder(WebSocketSession):
    """Sends one 2 MiB frame, more than its outbox_bytes, on connect."""

    async def on_connect(self) -> None:
        assert self.send_bytes(b"y" * (2 * 1024 * 1024))


async def test_the_outbox_is_bounded_in_bytes_too() -> None:
    # 256 KiB frames fill a 1 MiB outbox long before its 10,000 frames: a
    # client that never reads is held to 1 MiB (plus its kernel buffers),
    # then cut off as too slow.
    rec = Recorder()
    config = WebGateway(
        session=Boulders,
        session_args=(rec,),
        outbox_size=10_000,
        outbox_bytes=1024 * 1024,
        slow_consumer_timeout=0.3,
        close_timeout=0.3,
    )
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            async with open_websocket_url(gw.ws_url, message_queue_size=1):
                await rec.wait_for(lambda: bool(rec.of("stopping")))
            [(_, peak, queued, dropped)] = rec.of("stopping")
            assert 0 < peak <= 1024 * 1024
            assert dropped > 0 and queued <= 4
    # One frame larger than outbox_bytes still goes out, alone.
    config = WebGateway(session=OneBoulder, outbox_bytes=1024 * 1024)
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, config) as gw,
            open_websocket_url(gw.ws_url, max_message_size=4 * 1024 * 1024) as ws,
        ):
            assert await ws.get_message() == b"y" * (2 * 1024 * 1024)


class LosslessTorrent(Torrent):
    close_on_drop = True


async def test_close_on_drop_closes_at_the_first_dropped_frame() -> None:
    # The slow-consumer timeout is a minute: only close_on_drop can close
    # this session within the test's bound.
    rec = Recorder()
    config = WebGateway(
        session=LosslessTorrent,
        session_args=(rec,),
        outbox_size=8,
        slow_consumer_timeout=60.0,
        close_timeout=0.3,
    )
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, config) as gw,
            open_websocket_url(gw.ws_url, message_queue_size=1) as slow,
        ):
            await rec.wait_for(lambda: bool(rec.of("disconnect")))
            [(_, _, dropped)] = rec.of("stopping")
            assert dropped >= 1
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await slow.get_message()
            assert info.value.reason.code in (1008, 1006)  # the close frame, if it fit


async def test_slow_consumer_is_disconnected_and_nobody_else_slows_down() -> None:
    rec = Recorder()
    config = WebGateway(
        session=Flood,
        session_args=(rec,),
        outbox_size=64,
        slow_consumer_timeout=0.5,
        close_timeout=5.0,
    )
    counter = {"received": 0}
    got_200 = trio.Event()
    fast_closed: list[int] = []

    async def fast_reader(ws: WebSocketConnectionClient) -> None:
        try:
            while True:
                message = await ws.get_message()
                assert int(message.split(" ", 1)[0]) == counter["received"]  # nothing dropped
                counter["received"] += 1
                if counter["received"] == 200:
                    got_200.set()
        except ConnectionClosed as exc:
            fast_closed.append(exc.reason.code)

    with trio.fail_after(25):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            baseline = node.stats().actors
            # message_queue_size=1 and no get_message(): this client stops
            # reading its socket almost at once.
            async with (
                open_websocket_url(gw.ws_url, message_queue_size=1) as slow,
                open_websocket_url(gw.ws_url) as fast,
                trio.open_nursery() as nursery,
            ):
                nursery.start_soon(fast_reader, fast)
                with trio.fail_after(5):  # the fast client is not held up
                    await got_200.wait()
                # the slow one is cut off after slow_consumer_timeout...
                with trio.fail_after(5):
                    await rec.wait_for(lambda: bool(rec.of("stopping")))
                [(_, slow_ref, dropped)] = rec.of("stopping")
                assert dropped > 0
                # ...and reading what is in the pipe, the client finds the reason
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await slow.get_message()
                assert info.value.reason.code == 1008
                assert info.value.reason.reason == "consumer-too-slow"
                before = counter["received"]
                await trio.sleep(0.2)
                assert counter["received"] > before  # the fast client still gets its stream
                assert not fast_closed
                await rec.wait_for(lambda: bool(rec.of("disconnect")))
                assert rec.of("disconnect") == [("disconnect", slow_ref, 1008)]
                await wait_actors(node, baseline + 1)
                nursery.cancel_scope.cancel()


async def test_a_client_that_never_reads_again_is_dropped_without_a_handshake() -> None:
    rec = Recorder()
    config = WebGateway(
        session=Torrent,
        session_args=(rec,),
        outbox_size=64,
        slow_consumer_timeout=0.3,
        close_timeout=0.3,
    )
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url, message_queue_size=1) as slow:
                # The close frame cannot get through a full pipe: after
                # close_timeout the server drops the TCP connection instead.
                await rec.wait_for(lambda: bool(rec.of("disconnect")))
                started = trio.current_time()
                await wait_actors(node, baseline)
                assert trio.current_time() - started < 2
                try:
                    while True:
                        await slow.get_message()
                except ConnectionClosed as exc:
                    assert exc.reason.code == 1006  # no close frame arrived


async def test_node_shutdown_is_not_held_up_by_clients_that_stopped_reading() -> None:
    rec = Recorder()
    config = WebGateway(session=Torrent, session_args=(rec,), outbox_size=64, close_timeout=0.5)
    with trio.fail_after(10):
        async with trio.open_nursery() as clients:
            async with trouper.open_node() as node:
                gw = await start_gateway(node, config)
                for _ in range(4):  # none of them reads: each write ends up stuck
                    await connect_websocket_url(clients, gw.ws_url, message_queue_size=1)
                await rec.wait_for(lambda: len(rec.of("connect")) == 4)
                await trio.sleep(0.2)
                started = trio.current_time()
            # the sessions share one close_timeout, they do not add theirs up
            assert trio.current_time() - started < 1.5
            assert len(rec.of("disconnect")) == 4
            assert node.stats().actors == 0
            clients.cancel_scope.cancel()
