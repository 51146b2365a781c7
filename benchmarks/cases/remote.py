"""remote_ask, remote_tell, remote_ask_vs_grpc: two processes on loopback TCP.

The trouper sides open a listening node, ``spawn_node`` a second node process and spawn the
target actor there. The baselines start a peer process (``benchmarks.cases._net_peer``) and
talk to it directly: raw trio TCP with length-prefixed msgspec frames, or a grpcio unary
call. Connection set-up and ``WARMUP`` round trips are outside the timed region; every side
moves the same ``Ping`` Struct, encoded with msgspec.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import msgspec
import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._net import FrameReader, frame, peer
from benchmarks.cases._timing import clock, rate

if TYPE_CHECKING:
    import trouper

DEADLINE = 300.0  # seconds; a hung side fails loudly instead of stalling the run
WARMUP = 200  # untimed round trips before an ask measurement
TELL_BATCH = 64  # frames per send_all in the raw tell baseline
COOKIE = b"trouper-benchmarks"
ALLOW = ["benchmarks.cases.remote_actors:*"]


# ---------------------------------------------------------------- trouper sides


@asynccontextmanager
async def remote_actor(
    cls: type[trouper.Actor],
    listen: str = "tcp://127.0.0.1:0",
    tls: trouper.TLSConfig | None = None,
) -> AsyncIterator[trouper.ActorRef]:
    """A node "a" on ``listen``, a child node "b" on the same scheme, and a ``cls``
    actor spawned on "b"."""
    import trouper

    async with trouper.open_node(name="a", listen=[listen], cookie=COOKIE, tls=tls) as node:
        await node.spawn_node(name="b", allow_spawn=ALLOW, listen=listen)
        yield await node.spawn(cls, on="b")


def remote_ask_over(n: int, listen: str, tls: trouper.TLSConfig | None = None) -> float:
    """Sequential remote asks of an ``Echo`` on a child node, both nodes on ``listen``."""
    from benchmarks.cases.remote_actors import Echo

    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with remote_actor(Echo, listen, tls) as ref:
                for i in range(WARMUP):
                    await ref.ask(Ping(i))
                start = clock()
                for i in range(n):
                    reply = await ref.ask(Ping(i))
                    if reply.n != i:
                        raise AssertionError(f"remote ask {i} answered {reply!r}")
                elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def trouper_remote_ask(n: int) -> float:
    return remote_ask_over(n, "tcp://127.0.0.1:0")


def trouper_remote_tell(n: int) -> float:
    from benchmarks.cases.remote_actors import HowMany, Sink

    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with remote_actor(Sink) as ref:
                start = clock()
                for i in range(n):
                    await ref.tell(Ping(i))
                # The ask follows the tells down the same link; re-ask in case it overtook them.
                while (count := await ref.ask(HowMany(), timeout=None)) < n:
                    pass
                elapsed = clock() - start
                if count != n:
                    raise AssertionError(f"remote sink counted {count} of {n}")
        return rate(n, elapsed)

    return trio.run(main)


# ---------------------------------------------------------------- raw trio TCP baselines


def trio_tcp_ask(n: int) -> float:
    """Sequential ping-pong of one frame each way with an echo process."""
    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()

    async def round_trip(stream: trio.SocketStream, reader: FrameReader, i: int) -> None:
        await stream.send_all(frame(encoder.encode(Ping(i))))
        (body,) = await reader.receive()
        reply = decoder.decode(body)
        if reply.n != i:
            raise AssertionError(f"ping-pong {i} answered {reply!r}")

    async def main(port: int) -> float:
        with trio.fail_after(DEADLINE):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                reader = FrameReader(stream)
                for i in range(WARMUP):
                    await round_trip(stream, reader, i)
                start = clock()
                for i in range(n):
                    await round_trip(stream, reader, i)
                elapsed = clock() - start
        return rate(n, elapsed)

    with peer("echo") as port:
        return trio.run(main, port)


def trio_tcp_tell(n: int) -> float:
    """Pipelined frames, ``TELL_BATCH`` per ``send_all``, until the sink acknowledges all."""
    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()

    async def main(port: int) -> float:
        with trio.fail_after(DEADLINE):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                reader = FrameReader(stream)
                start = clock()
                for low in range(0, n, TELL_BATCH):
                    batch = range(low, min(low + TELL_BATCH, n))
                    await stream.send_all(b"".join(frame(encoder.encode(Ping(i))) for i in batch))
                (body,) = await reader.receive()
                elapsed = clock() - start
                count = decoder.decode(body).n
                if count != n:
                    raise AssertionError(f"sink acknowledged {count} of {n}")
        return rate(n, elapsed)

    with peer("sink", str(n)) as port:
        return trio.run(main, port)


# ---------------------------------------------------------------- grpcio baseline


def grpc_ask(n: int) -> float:
    """Sequential grpcio sync unary calls, raw msgspec bytes in and out."""
    import grpc

    from benchmarks.cases._net_peer import GRPC_METHOD

    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()
    with peer("grpc") as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(GRPC_METHOD)

        def round_trip(i: int) -> None:
            reply = decoder.decode(call(encoder.encode(Ping(i)), timeout=DEADLINE))
            if reply.n != i:
                raise AssertionError(f"grpc call {i} answered {reply!r}")

        for i in range(WARMUP):
            round_trip(i)
        start = clock()
        for i in range(n):
            round_trip(i)
        elapsed = clock() - start
    return rate(n, elapsed)
