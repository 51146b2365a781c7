"""Remote actors between nodes in one process, over real TCP on 127.0.0.1:
location transparency, the cluster registry, gossip, and bad input."""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest
import trio
import trio.testing

import trouper
from trouper.protocols import (
    Ask,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    InitiatorConnection,
    Reply,
    Tell,
    WireRef,
)

COOKIE = b"test-cookie"
FAST = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 2.0}


@trouper.message
class Ping(msgspec.Struct):
    n: int


class Pong(msgspec.Struct):
    n: int
    by: str


class Relay(msgspec.Struct):
    to: trouper.ActorRef
    n: int


class Echo(trouper.Actor):
    def __init__(self) -> None:
        self.count = 0

    @trouper.handler
    async def ping(self, msg: Ping) -> Pong:
        self.count += 1
        return Pong(msg.n + 1, self.ctx.self_ref.node_id)

    @trouper.handler
    async def relay(self, msg: Relay) -> None:
        await msg.to.tell(Ping(msg.n))

    @trouper.handler
    async def numbers(self, msg: int) -> AsyncIterator[int]:
        for i in range(msg):
            yield i

    @trouper.handler
    async def how_many(self, msg: str) -> int:
        if msg == "fail":
            raise ValueError("remote failure")
        return self.count


class Collector(trouper.Actor):
    def __init__(self, out: trio.MemorySendChannel[object]) -> None:
        self.out = out

    @trouper.handler
    async def ping(self, msg: Ping) -> None:
        await self.out.send(("ping", msg.n, self.ctx.sender))

    @trouper.handler
    async def watch(self, msg: trouper.ActorRef) -> None:
        self.ctx.watch(msg)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        await self.out.send(msg)


@asynccontextmanager
async def cluster(n: int, **options: object) -> AsyncIterator[list[trouper.Node]]:
    """``n`` nodes in this process, each seeded with the first."""
    async with trouper.open_node(
        "n0", listen="tcp://127.0.0.1:0", cookie=COOKIE, **options
    ) as first:
        nodes = [first]
        async with _more(first, n - 1, nodes, options):
            for node in nodes:
                await node.wait_for_members(n, timeout=10)
            yield nodes


@asynccontextmanager
async def _more(
    first: trouper.Node, left: int, nodes: list[trouper.Node], options: dict[str, object]
) -> AsyncIterator[None]:
    if left == 0:
        yield
        return
    async with trouper.open_node(
        f"n{len(nodes)}",
        listen="tcp://127.0.0.1:0",
        seeds=nodes[-1].addresses,
        cookie=COOKIE,
        **options,
    ) as node:
        nodes.append(node)
        async with _more(first, left - 1, nodes, options):
            yield


async def test_ask_tell_stream_and_errors_across_nodes() -> None:
    with trio.fail_after(20):
        async with cluster(2, remote_tracebacks=True) as (a, b):
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            assert ref.node_id == "n1" and ref._cell is None
            assert await ref.ask(Ping(1)) == Pong(2, "n1")
            for i in range(10):
                await ref.tell(Ping(i))
            ref.tell_nowait(Ping(99))
            assert await ref.ask("count") == 12
            async with ref.stream(50, window=4) as items:
                assert [i async for i in items] == list(range(50))
            with pytest.raises(trouper.RemoteError) as info:
                await ref.ask("fail")
            err = info.value
            assert (err.type_name, err.message) == ("ValueError", "remote failure")
            assert err.node == "n1" and err.path == "/user/echo"
            assert "raise ValueError" in err.traceback
            with pytest.raises(trouper.UnhandledMessage):
                await ref.ask(2.5)
            assert await ref.ask(Ping(5)) == Pong(6, "n1")  # restarted after the failure


async def test_error_replies_carry_tracebacks_only_when_asked() -> None:
    with trio.fail_after(20):
        async with cluster(2) as (a, b):
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            with pytest.raises(trouper.RemoteError) as info:
                await ref.ask("fail")
            assert info.value.type_name == "ValueError" and info.value.traceback == ""


async def test_refs_travel_inside_messages() -> None:
    send, recv = trio.open_memory_channel[object](10)
    with trio.fail_after(20):
        async with cluster(2) as (a, b):
            collector = await a.spawn(Collector, send)
            echo = await b.spawn(Echo, name="echo")
            remote = await a.lookup("echo", timeout=5)
            await remote.tell(Relay(collector, 7))
            kind, n, sender = await recv.receive()  # type: ignore[misc]
            assert (kind, n) == ("ping", 7)
            assert sender == echo  # the implicit sender crossed the wire as a ref
            with pytest.raises(trouper.UnhandledMessage, match="ActorRef"):
                await remote.ask(collector)  # a bare ref is a message too (none handles it)


async def test_watch_across_nodes() -> None:
    send, recv = trio.open_memory_channel[object](10)
    with trio.fail_after(20):
        async with cluster(2) as (a, b):
            watcher = await a.spawn(Collector, send)
            await b.spawn(Echo, name="echo")
            remote = await a.lookup("echo", timeout=5)
            await watcher.tell(remote)
            await trio.testing.wait_all_tasks_blocked()
            assert await remote.ask(Ping(0)) == Pong(1, "n1")
            await b.stop(b.registry.get("echo"))  # type: ignore[arg-type]
            assert await recv.receive() == trouper.Terminated(remote, "normal")
            with pytest.raises(trouper.ActorDead):
                await remote.ask(Ping(1))
            await watcher.tell(remote)  # watching the dead: notified at once
            assert (await recv.receive()).reason == "no such actor"  # type: ignore[attr-defined]


async def test_three_nodes_gossip_to_a_full_mesh_and_share_names() -> None:
    with trio.fail_after(30):
        async with cluster(3) as (a, _, c):
            assert {m.node_id for m in a.members()} == {"n0", "n1", "n2"}
            assert all(m.status == "up" for m in c.members())
            await a.spawn(Echo, name="on-a")
            ref = await c.lookup("on-a", timeout=5)
            assert await ref.ask(Ping(1)) == Pong(2, "n0")
            await c.spawn(Echo, name="on-c")
            assert (await a.lookup("on-c", timeout=5)).node_id == "n2"


async def test_remote_spawn_needs_allow_spawn() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node(
                "host", listen="tcp://127.0.0.1:0", cookie=COOKIE, allow_spawn=["test_remote:Ec*"]
            ) as host,
            trouper.open_node("client", seeds=host.addresses, cookie=COOKIE) as client,
        ):
            await client.wait_for_members(2)
            ref = await client.spawn(Echo, on="host", name="spawned")
            assert ref.node_id == "host" and host.registry.get("spawned") == ref
            assert await ref.ask(Ping(3)) == Pong(4, "host")
            with pytest.raises(trouper.SpawnRefused):
                await client.spawn(Collector, on="host")
            with pytest.raises(trouper.NodeDown):
                await client.spawn(Echo, on="nowhere")


async def test_wrong_cookie_is_refused_and_others_carry_on() -> None:
    with trio.fail_after(20):
        async with cluster(2) as (a, b):
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            async with trouper.open_node("intruder", cookie=b"wrong") as intruder:
                with pytest.raises(trouper.HandshakeFailed):
                    await intruder.connect(b.addresses[0], timeout=5)
            assert await ref.ask(Ping(1)) == Pong(2, "n1")


async def _handshaken(url: str, node_id: str = "raw") -> tuple[trio.SocketStream, FrameDecoder]:
    """A raw TCP client that does a real handshake, to misbehave afterwards."""
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    proto = InitiatorConnection(node_id=node_id, incarnation=1, cookie=COOKIE, nonce=os.urandom(16))
    encoder, decoder = FrameEncoder(), FrameDecoder()
    await stream.send_all(encoder.encode(proto.start()))
    while not proto.established:
        for env in decoder.feed(await stream.receive_some(65536)):
            if not proto.established:
                replies = proto.receive(env)
                if replies:
                    await stream.send_all(encoder.encode(replies))
    return stream, decoder


async def _closed_by_peer(stream: trio.SocketStream, decoder: FrameDecoder) -> list[object]:
    """Read until the node hangs up; return what it said (its Goodbye)."""
    said: list[object] = []
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return said
        if not data:
            return said
        said.extend(decoder.feed(data))


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "oversize",
        "zero-length",
        "truncated",
        "handshake-garbage",
    ],
)
async def test_bad_input_closes_only_that_connection(bad: str) -> None:
    """Framing garbage (and a failed handshake) closes that one connection."""
    with trio.fail_after(20):
        async with cluster(2, max_frame_size=1 << 16) as (a, b):
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            url = b.addresses[0]
            if bad == "handshake-garbage":
                host, port = url.removeprefix("tcp://").rsplit(":", 1)
                stream = await trio.open_tcp_stream(host, int(port))
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
                decoder = FrameDecoder()
            else:
                stream, decoder = await _handshaken(url)
                WireRef("n1", "/user/echo", ref.uid)
                payloads = {
                    "garbage": struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1",
                    "oversize": struct.pack(">I", 1 << 20) + b"x" * 100,
                    "zero-length": struct.pack(">I", 0),
                    "truncated": struct.pack(">I", 100) + b"\x91",
                }
                await stream.send_all(payloads[bad])
                if bad == "truncated":
                    await stream.send_eof()
            said = await _closed_by_peer(stream, decoder)
            if bad != "handshake-garbage":
                assert any(isinstance(s, Goodbye) and s.code for s in said), said
            await stream.aclose()
            # The legitimate link and every actor carry on.
            assert await ref.ask(Ping(1)) == Pong(2, "n1")
            assert await ref.ask("count") == 1


async def test_a_bad_message_fails_only_itself() -> None:
    """An unknown type, a payload that does not fit its type, an unknown
    target: each fails that one message, with a reply naming the type and the
    reason to an ask, and the link stays up."""
    with trio.fail_after(20):
        async with cluster(2) as (a, b):
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            stream, decoder = await _handshaken(b.addresses[0])
            target = WireRef("n1", "/user/echo", ref.uid)
            nowhere = WireRef("n1", "/user/nobody", 7)
            one = msgspec.Raw(msgspec.msgpack.encode(1))
            ping = f"{__name__}:Ping"
            bad = msgspec.Raw(msgspec.msgpack.encode("not a ping"))
            good = msgspec.Raw(msgspec.msgpack.encode(Ping(41)))
            await stream.send_all(
                FrameEncoder().encode(
                    [
                        Tell(target, "evil:Type", one),
                        Tell(target, ping, bad),
                        Ask(1, target, "evil:Type", one),
                        Ask(2, target, ping, bad),
                        Ask(3, nowhere, ping, good),
                        Ask(4, target, ping, good),
                    ]
                )
            )
            answers: dict[int, object] = {}
            while len(answers) < 4:
                for env in decoder.feed(await stream.receive_some(65536)):
                    assert not isinstance(env, Goodbye), env
                    if isinstance(env, Failure | Reply):
                        answers[env.id] = env
            unknown, unfit, dead, fine = (answers[i] for i in (1, 2, 3, 4))
            assert isinstance(unknown, Failure) and unknown.error_code == "unhandled-message"
            assert "'evil:Type'" in unknown.message and "unknown message type" in unknown.message
            assert isinstance(unfit, Failure) and unfit.error_code == "unhandled-message"
            assert ping in unfit.message and "Expected `object`" in unfit.message
            assert isinstance(dead, Failure) and dead.error_code == "actor-dead"
            assert isinstance(fine, Reply)
            assert msgspec.msgpack.decode(fine.payload, type=Pong) == Pong(42, "n1")
            await stream.aclose()
            assert await ref.ask(Ping(1)) == Pong(2, "n1")
            assert await ref.ask("count") == 2


async def test_slow_consumer_keeps_memory_bounded() -> None:
    produced: list[int] = []

    class Firehose(trouper.Actor):
        @trouper.handler
        async def flood(self, msg: int) -> AsyncIterator[bytes]:
            for i in range(msg):
                produced.append(i)
                yield b"x" * 1024

    with trio.fail_after(30):
        async with cluster(2) as (a, b):
            await b.spawn(Firehose, name="hose")
            ref = await a.lookup("hose", timeout=5)
            taken = 0
            async with ref.stream(10_000, window=8) as items:
                async for _ in items:
                    taken += 1
                    # the producer never runs more than the window (+ the one
                    # item suspended in its local channel) ahead
                    assert len(produced) <= taken + 8 + 2
                    if taken == 200:
                        break
                    await trio.sleep(0.001)
            await trio.sleep(0.1)
            assert len(produced) <= 200 + 8 + 2  # cancelled when the consumer left


async def test_node_without_cookie_cannot_join() -> None:
    with pytest.raises(trouper.ConfigurationError):
        async with trouper.open_node(listen="tcp://127.0.0.1:0"):
            pass  # pragma: no cover
    with pytest.raises(trouper.ConfigurationError):
        async with trouper.open_node(cookie="x", listen="carrier-pigeon://x:1"):
            pass  # pragma: no cover
