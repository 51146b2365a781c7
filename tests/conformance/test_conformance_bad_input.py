"""Bad input, per transport: bad framing closes that connection only, and a
bad message fails only itself.

A raw client opens a stream over the transport under test (TLS and all, via
``get_transport(scheme).connect``), usually does a real trouper handshake, and
then misbehaves. For framing garbage the node must hang up on it (saying why
in a Goodbye), while the link between the two real nodes carries on without
losing anything: an ask in flight across it when the bad input arrived is
still answered, and tells sent before it all arrive. For a bad message (an
unknown type, a payload that does not fit its type, an unknown target) the
node answers that message with an error naming the type and the reason, and
the raw connection itself stays up.
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
from trouper.protocols import (
    Ask,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Reply,
    StreamEnd,
    StreamOpen,
    Tell,
    WireRef,
)

CASES = [
    "handshake-garbage",  # not a trouper handshake at all
    "wrong-cookie",  # a handshake that fails
    "garbage",  # a frame whose body is not msgpack
    "oversize",  # a length prefix far above max_frame_size
    "zero-length",
    "truncated-body",  # a complete frame holding a cut-off msgpack array
    "not-envelopes",  # well-formed msgpack, but not a list of envelopes
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
        goodbyes = [s for s in said if isinstance(s, Goodbye)]
        if case not in ("handshake-garbage", "wrong-cookie", "eof-mid-frame"):
            # The one writer sends the Goodbye before the link closes: it is
            # never cut off in the middle of a write (on tls:// neither).
            assert goodbyes, f"{case}: no Goodbye"
        for goodbye in goodbyes:
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


async def test_a_bad_message_fails_only_itself(net: Net) -> None:
    rng = random.Random(2)
    with trio.fail_after(30):
        async with net.cluster(2) as (a, b):
            echo = await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            (url,) = b.addresses
            target = WireRef("n1", "/user/echo", echo.uid)
            nowhere = WireRef("n1", "/user/nobody", 1)
            ping = "conformance_actors:Ping"
            one = msgspec.Raw(msgspec.msgpack.encode(1))
            unfit = msgspec.Raw(msgspec.msgpack.encode("not a ping"))
            good = msgspec.Raw(msgspec.msgpack.encode(Ping(41)))
            stream = await net.connect_raw(url)
            async with stream:
                decoder = await handshake(stream, "raw-bad-message", rng)
                await stream.send_all(
                    FrameEncoder().encode(
                        [
                            Tell(target, "evil:Type", one),
                            Tell(target, ping, unfit),
                            Ask(1, target, "evil:Type", one),
                            Ask(2, target, ping, unfit),
                            Ask(3, nowhere, ping, good),
                            StreamOpen(4, target, "evil:Type", one, 4),
                            Ask(5, target, ping, good),
                        ]
                    )
                )
                answers: dict[int, object] = {}
                while len(answers) < 5:
                    data = await stream.receive_some(65536)
                    assert data, "the node hung up on a bad message"
                    for env in decoder.feed(data):
                        assert not isinstance(env, Goodbye), env
                        if isinstance(env, Failure | Reply | StreamEnd):
                            answers[env.id] = env
                unknown, unfit_answer, dead, stream_end, fine = (
                    answers[i] for i in (1, 2, 3, 4, 5)
                )
                assert isinstance(unknown, Failure) and unknown.error_code == "unhandled-message"
                assert "'evil:Type'" in unknown.message
                assert isinstance(unfit_answer, Failure)
                assert (
                    unfit_answer.error_code == "unhandled-message" and ping in unfit_answer.message
                )
                assert isinstance(dead, Failure) and dead.error_code == "actor-dead"
                assert isinstance(stream_end, StreamEnd) and stream_end.error is not None
                assert "'evil:Type'" in stream_end.error.message
                assert isinstance(fine, Reply)
                assert msgspec.msgpack.decode(fine.payload, type=Pong) == Pong(42, "n1")
            assert await ref.ask(Count()) == 1  # only the good ask reached the actor
