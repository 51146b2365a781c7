"""WebSockets on the gateway's own HTTP/1.1 path, seen from a raw socket.

The client here frames by hand (``_wsframe`` in the client role), so each
test controls every byte: handshakes good and bad, pings, closes, limits,
a client that never reads, and broadcasts that must arrive once and in order.
"""

from __future__ import annotations

import base64
import random

import pytest
import trio
import trio.lowlevel
from web_helpers import Echo, Recorder, wait_actors

import trouper
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession, open_gateway, send_text
from trouper.web import _fanout as fanout
from trouper.web._wsfast import NOT_WRITTEN, OWING, WsSocket
from trouper.web._wsframe import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    FrameDecoder,
    Message,
    Outgoing,
    Pong,
    accept_key,
    close_frame,
    encode_frame,
)

KEY = base64.b64encode(bytes(range(16))).decode()


class RawWs:
    """A hand-framed WebSocket client over a TCP stream."""

    def __init__(self, stream: trio.SocketStream, rest: bytes) -> None:
        self.stream = stream
        self.decoder = FrameDecoder(1 << 24, masked=False)
        self.events = list(self.decoder.feed(rest))
        self.random = random.Random(7)

    async def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = self.random.randbytes(4)
        await self.stream.send_all(encode_frame(opcode, payload, fin=fin, mask=mask))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def next(self) -> object | None:
        """The next frame from the server; None at EOF."""
        while not self.events:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.events.extend(self.decoder.feed(data))
        return self.events.pop(0)


async def upgrade(url: str, path: str = "/ws", **headers: str) -> tuple[bytes, trio.SocketStream]:
    """Send an upgrade request; the response head and the stream (rest buffered)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    fields = {
        "Host": f"{host}:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v)
    await stream.send_all(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data, stream


async def connect(url: str) -> RawWs:
    data, stream = await upgrade(url)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"sec-websocket-accept: " + accept_key(KEY.encode()) in head
    return RawWs(stream, rest)


def fast(rec: Recorder, **options: object) -> WebGateway:
    return WebGateway(server="trouper", session=Echo, session_args=(rec,), **options)  # type: ignore[arg-type]


async def test_handshake_and_echo() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, fast(rec)) as gw:
            ws = await connect(gw.url)
            await ws.send(OP_TEXT, "héllo".encode())
            assert await ws.next() == Message("héllo")
            await ws.send(OP_BINARY, b"abc")
            assert await ws.next() == Message(b"cba")
            # fragmented, with a ping in the middle: one message comes back whole
            await ws.send(OP_TEXT, b"frag", fin=False)
            await ws.send(OP_PING, b"p")
            await ws.send(OP_CONT, b"mented")
            pong = await ws.next()
            assert isinstance(pong, Pong) and pong.payload == b"p"
            assert await ws.next() == Message("fragmented")
            await ws.stream.aclose()


async def test_bad_handshakes_are_refused() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, fast(rec)) as gw:
            head, stream = await upgrade(gw.url, Sec_WebSocket_Key="")
            assert head.startswith(b"HTTP/1.1 400 ")
            assert b"Sec-WebSocket-Key" in head
            await stream.aclose()
            head, stream = await upgrade(gw.url, Sec_WebSocket_Version="8")
            assert head.startswith(b"HTTP/1.1 426 ")
            assert b"sec-websocket-version: 13" in head.lower()
            await stream.aclose()
            head, stream = await upgrade(gw.url, path="/elsewhere")
            assert head.startswith(b"HTTP/1.1 404 ")
            await stream.aclose()
            assert not rec.of("connect")


async def test_ping_pong_and_the_clients_close_handshake() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, fast(rec)) as gw:
            baseline = node.stats().actors
            ws = await connect(gw.url)
            await ws.send(OP_PING, b"are you there")
            pong = await ws.next()
            assert isinstance(pong, Pong) and pong.payload == b"are you there"
            await ws.send_raw(close_frame(4001, "bye", mask=b"abcd"))
            echo = await ws.next()
            assert isinstance(echo, Close) and echo.code == 4001  # the handshake
            assert await ws.next() is None  # then the server closes TCP
            await rec.wait_for(lambda: bool(rec.of("disconnect")))
            assert rec.of("disconnect")[0][2] == 4001  # the client's own code
            await wait_actors(node, baseline)


async def test_the_servers_close_handshake() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, fast(rec)) as gw:
            ws = await connect(gw.url)
            await ws.send(OP_TEXT, b"close:enough")
            assert await ws.next() == Message("last words")
            close = await ws.next()
            assert isinstance(close, Close) and (close.code, close.reason) == (4000, "enough")
            await ws.send_raw(close_frame(4000, mask=b"abcd"))
            assert await ws.next() is None
            await rec.wait_for(lambda: bool(rec.of("disconnect")))
            assert rec.of("disconnect")[0][2] == 4000


async def test_limits_and_bad_frames_close_with_their_codes() -> None:
    rec = Recorder()
    cases = [
        (encode_frame(OP_TEXT, b"x" * 2000, mask=b"abcd"), 1009),  # over max_message_size
        (encode_frame(OP_TEXT, b"\xff\xfe", mask=b"abcd"), 1007),  # not UTF-8
        (encode_frame(OP_TEXT, b"unmasked"), 1002),
    ]
    with trio.fail_after(15):
        async with (
            trouper.open_node() as node,
            open_gateway(node, fast(rec, max_message_size=1000)) as gw,
        ):
            baseline = node.stats().actors
            for frame, code in cases:
                ws = await connect(gw.url)
                await ws.send_raw(frame)
                close = await ws.next()
                assert isinstance(close, Close) and close.code == code
                assert await ws.next() is None
            await wait_actors(node, baseline)
            assert [e[2] for e in rec.of("disconnect")] == [1009, 1007, 1002]


class Torrent(WebSocketSession):
    """Pushes 100 KiB every 10 ms and records how much it holds."""

    def __init__(self, connection: WebSocketConnection, rec: Recorder) -> None:
        super().__init__(connection)
        self.rec = rec

    async def on_connect(self) -> None:
        self.ctx.start_soon(self.pump)

    async def pump(self) -> None:
        payload = "x" * 1024
        while True:
            for _ in range(100):
                self.send_text(payload)
            self.rec.add("queued", self.queued, self.dropped)
            await trio.sleep(0.01)

    async def on_disconnect(self, code: int) -> None:
        self.rec.add("disconnect", code)


async def test_a_client_that_never_reads_is_cut_off_with_bounded_memory() -> None:
    rec = Recorder()
    config = WebGateway(
        server="trouper",
        session=Torrent,
        session_args=(rec,),
        outbox_size=32,
        slow_consumer_timeout=0.3,
        close_timeout=0.3,
    )
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            baseline = node.stats().actors
            _ = await connect(gw.url)  # and never read again
            await rec.wait_for(lambda: bool(rec.of("disconnect")))
            await wait_actors(node, baseline)
            samples = rec.of("queued")
            assert max(queued for _, queued, _ in samples) <= 32  # the outbox bound
            assert samples[-1][2] > 0  # what did not fit was dropped
            assert rec.of("disconnect") == [("disconnect", 1008)]
            assert gw._state.metrics.slow_consumers == 1


class Member(WebSocketSession):
    def __init__(self, connection: WebSocketConnection, rec: Recorder) -> None:
        super().__init__(connection)
        self.rec = rec

    async def on_connect(self) -> None:
        self.rec.add("connect", self.ctx.self_ref)


@pytest.mark.parametrize("direct_writes", [256, 10])
async def test_a_broadcast_reaches_every_session_once_and_in_order(
    direct_writes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With 10, a third of the members are written to directly, the rest by
    # their writer tasks: the order holds on both paths.
    monkeypatch.setattr(fanout, "DIRECT_WRITES", direct_writes)
    rec = Recorder()
    members, count = 30, 400
    config = WebGateway(server="trouper", session=Member, session_args=(rec,), outbox_size=count)
    payload = "y" * 4096  # 1.6 MB per member: socket buffers fill, outboxes queue
    with trio.fail_after(30):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            clients = [await connect(gw.url) for _ in range(members)]
            await rec.wait_for(lambda: len(rec.of("connect")) == members)
            refs = [ref for _, ref in rec.of("connect")]
            received: list[list[int]] = [[] for _ in clients]

            async def read(n: int) -> None:
                while len(received[n]) < count:
                    message = await clients[n].next()
                    assert isinstance(message, Message) and isinstance(message.data, str)
                    number, _, rest = message.data.partition(" ")
                    assert rest == payload
                    received[n].append(int(number))

            async with trio.open_nursery() as nursery:
                for n in range(members // 2):  # half of them read from the start
                    nursery.start_soon(read, n)
                for i in range(count):
                    fan = send_text(refs, f"{i} {payload}")
                    assert (fan.queued, fan.forwarded, fan.dropped) == (members, 0, 0)
                    if i % 50 == 0:
                        await trio.lowlevel.checkpoint()  # the writers drain now and then
                for n in range(members // 2, members):  # the rest only now
                    nursery.start_soon(read, n)
            assert all(got == list(range(count)) for got in received)
            assert gw._state.metrics.frames_sent == members * count
            for ws in clients:
                await ws.stream.aclose()


async def test_a_delivery_to_a_client_that_keeps_up_is_written_within_the_call() -> None:
    rec = Recorder()
    members = 5
    config = WebGateway(server="trouper", session=Member, session_args=(rec,))
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, config) as gw:
            clients = [await connect(gw.url) for _ in range(members)]
            await rec.wait_for(lambda: len(rec.of("connect")) == members)
            refs = [ref for _, ref in rec.of("connect")]
            metrics = gw._state.metrics
            before = metrics.frames_sent
            send_text(refs, "now")
            # No checkpoint since: each frame went into its socket from this
            # task, without waking any writer task.
            assert metrics.frames_sent == before + members
            for ws in clients:
                assert await ws.next() == Message("now")
                await ws.stream.aclose()


async def test_a_write_after_a_short_direct_write_sends_the_rest_of_the_frame_first() -> None:
    a, b = trio.socket.socketpair()
    server, client = trio.SocketStream(a), trio.SocketStream(b)
    sock = WsSocket(server, b"key", 1000, b"")
    frames: list[Outgoing] = []
    with trio.fail_after(10):
        while True:  # until the socket takes only part of a frame
            frame = Outgoing(f"{len(frames)} " + "x" * 50_000)
            state = sock.write_now(frame)
            assert state != NOT_WRITTEN  # nothing was owed or under way
            frames.append(frame)
            if state == OWING:
                break
        assert sock.write_now(Outgoing("later")) == NOT_WRITTEN  # nothing passes the rest
        decoder = FrameDecoder(1 << 20, masked=False)
        events: list[object] = []
        async with trio.open_nursery() as nursery:
            # A pong, written while the client reads: after the whole frame.
            nursery.start_soon(sock.write, encode_frame(OP_PONG, b"p"))
            while len(events) < len(frames) + 1:
                events += decoder.feed(await client.receive_some(65536))
        assert events[:-1] == [Message(frame.text or "") for frame in frames]
        assert isinstance(events[-1], Pong) and events[-1].payload == b"p"
        sock.retire()
        await server.aclose()
        await client.aclose()
