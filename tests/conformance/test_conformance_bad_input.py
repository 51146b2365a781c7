"""Bad input on one connection closes that connection only, per transport.

A raw client opens a stream over the transport under test (TLS and all, via
``get_transport(scheme).connect``), usually does a real trouper handshake, and
then misbehaves. The node must hang up on it, while the link between the two real nodes
carries on without losing anything: an ask in flight across it when the bad
input arrived is still answered, and tells sent before it all arrive.
"""

from __future__ import annotations

import random
import struct

import msgspec
import pytest
import trio
from conformance_actors import Count, Echo, Gate, Hold, Ping, Pong
from conformance_helpers import Net, closed_by_peer, handshake

import trouper
from trouper.protocols import FrameDecoder, FrameEncoder, Goodbye, Tell, WireRef

CASES = [
    "handshake-garbage",  # not a trouper handshake at all
    "wrong-cookie",  # a handshake that fails
    "garbage",  # a frame whose body is not msgpack
    "oversize",  # a length prefix far above max_frame_size
    "zero-length",
    "truncated-body",  # a complete frame holding a cut-off msgpack array
    "not-envelopes",  # well-formed msgpack, but not a list of envelopes
    "unknown-type",  # a Tell of a type nobody registered
    "bad-payload",  # a Tell whose payload does not decode as its type
    "eof-mid-frame",  # the client goes away halfway through a frame
]


def bad_bytes(case: str, target: WireRef) -> bytes:
    encoder = FrameEncoder()
    tell = Tell(target, "conformance_actors:Ping", msgspec.Raw(msgspec.msgpack.encode(Ping(1))))
    valid = encoder.encode([tell])
    match case:
        case "garbage":
            return struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1"
        case "oversize":
            return struct.pack(">I", 0xFFFFFFFF) + b"x" * 100
        case "zero-length":
            return struct.pack(">I", 0)
        case "truncated-body":
            body = valid[4:-3]
            return struct.pack(">I", len(body)) + body
        case "not-envelopes":
            body = msgspec.msgpack.encode({"hello": [1, 2, 3]})
            return struct.pack(">I", len(body)) + body
        case "unknown-type":
            raw = msgspec.Raw(msgspec.msgpack.encode(1))
            return encoder.encode([Tell(target, "evil:Type", raw)])
        case "bad-payload":
            raw = msgspec.Raw(msgspec.msgpack.encode("not a ping"))
            return encoder.encode([Tell(target, "conformance_actors:Ping", raw)])
        case "eof-mid-frame":
            return valid[: len(valid) // 2]
    raise AssertionError(case)


async def misbehave(net: Net, url: str, case: str, target: WireRef, rng: random.Random) -> None:
    """Open a raw connection to ``url``, send ``case``'s bad input, and check
    that the node hangs up on it."""
    stream = await net.connect_raw(url)
    async with stream:
        decoder = FrameDecoder()
        if case == "handshake-garbage":
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        elif case == "wrong-cookie":
            with pytest.raises(trouper.HandshakeFailed):
                await handshake(stream, f"raw-{case}", rng, cookie=b"not-the-cookie")
        else:
            decoder = await handshake(stream, f"raw-{case}", rng)
            await stream.send_all(bad_bytes(case, target))
        if case == "eof-mid-frame":
            if not isinstance(stream, trio.abc.HalfCloseableStream):
                return  # we can only hang up: the node must just carry on
            await stream.send_eof()
        said = await closed_by_peer(stream, decoder)
        # A Goodbye saying why should precede the close, but is not required:
        # over tls:// the runtime loses it about half the time (Peer.run
        # cancels its writer mid-send_all when the reader fails, and a
        # cancelled send breaks a trio.SSLStream for good, Goodbye included).
        # When one arrives, it must say why.
        for goodbye in (s for s in said if isinstance(s, Goodbye)):
            assert goodbye.code, f"{case}: {goodbye}"


async def hold(gate: trouper.ActorRef, held: list[int]) -> None:
    held.append(await gate.ask(Hold(7), timeout=None))


async def test_bad_input_closes_only_that_connection(net: Net) -> None:
    rng = random.Random(1)
    with trio.fail_after(30):
        async with net.cluster(2) as (a, b):
            echo = await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            (url,) = b.addresses
            target = WireRef("n1", "/user/echo", echo.uid)
            incarnation = [m.incarnation for m in a.members() if m.node_id == "n1"]
            expected = 0
            for case in CASES:
                arrived, release = trio.Event(), trio.Event()
                await b.spawn(Gate, arrived, release, name=f"gate-{case}", shutdown=0.1)
                gate = await a.lookup(f"gate-{case}", timeout=5)
                held: list[int] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hold, gate, held)
                    await arrived.wait()  # the ask is in flight over the a-b link
                    for i in range(5):
                        await ref.tell(Ping(i))
                    expected += 5
                    with trio.move_on_after(5) as slow:
                        await misbehave(net, url, case, target, rng)
                    assert not slow.cancelled_caught, f"{case}: the node did not hang up in 5 s"
                    release.set()
                assert held == [7], case
                assert await ref.ask(Count()) == expected, case
                assert await ref.ask(Ping(1)) == Pong(2, "n1"), case
                expected += 1
            # The real link never went down, in either direction.
            assert [m.incarnation for m in a.members() if m.node_id == "n1"] == incarnation
            assert {m.status for m in a.members() + b.members() if m.node_id in ("n0", "n1")} == {
                "up"
            }
            await a.spawn(Echo, name="echo-a")
            assert await (await b.lookup("echo-a", timeout=5)).ask(Ping(0)) == Pong(1, "n0")
