"""One writer per link, and frames within the limit, per transport (issue 10,
items 2 and 3).

No caller's cancellation may interrupt a write: asks time out while large
tells are being written, on tcp, tls, quic, ws and wss, and every tell still
arrives whole and in order, on the same connection, with nobody declared
down. Batching respects ``max_frame_size``; a single message too large fails
at the sender with ``FrameTooLarge`` and the link stays up.
"""

from __future__ import annotations

import logging
import random

import pytest
import trio
from conformance_actors import Blob, Echo, Ping, Pong, Sink
from conformance_helpers import Net

import trouper
from trouper.remote import Remoting

MIB = 1024 * 1024


def trouble(caplog: pytest.LogCaptureFixture) -> list[str]:
    words = ("is down", "protocol error", "closing that link", "slow consumer")
    return [r.getMessage() for r in caplog.records if any(w in r.getMessage() for w in words)]


async def test_ask_timeouts_never_cut_a_write(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trouper.remote")
    rng = random.Random(10)
    send, received = trio.open_memory_channel[tuple[object, object]](100)
    blobs = [Blob(bytes([i]) * (3 * MIB + i)) for i in range(8)]
    with trio.fail_after(120):
        async with net.cluster(2) as (a, b):
            await b.spawn(Sink, send, name="sink")
            await b.spawn(Echo, name="echo")
            sink = await a.lookup("sink", timeout=5)
            echo = await a.lookup("echo", timeout=5)
            remoting = a.remote
            assert isinstance(remoting, Remoting)
            before = remoting.statistics()["n1"].incarnation
            timeouts = answered = 0

            async def asks() -> None:
                nonlocal timeouts, answered
                for i in range(150):
                    try:
                        await echo.ask(Ping(i), timeout=rng.uniform(0.0005, 0.02))
                        answered += 1
                    except trouper.AskTimeout:
                        timeouts += 1

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(asks)
                for blob in blobs:
                    await sink.tell(blob)
            got = [await received.receive() for _ in blobs]
            assert [msg for msg, _ in got] == blobs  # whole, in order, none lost
            assert timeouts > 0  # the race did happen
            assert await echo.ask(Ping(1), timeout=10) == Pong(2, "n1")
            stats = remoting.statistics()["n1"]
            assert stats.incarnation == before and stats.status == "up" and stats.connected
            assert trouble(caplog) == []


async def test_batches_respect_the_frame_limit_and_too_large_fails_at_the_sender(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trouper.remote")
    send, received = trio.open_memory_channel[tuple[object, object]](100)
    limit = 8 * MIB
    with trio.fail_after(60):
        async with net.cluster(2, max_frame_size=limit) as (a, b):
            await b.spawn(Sink, send, name="sink")
            sink = await a.lookup("sink", timeout=5)
            six = [Blob(bytes([i]) * (6 * MIB)) for i in range(2)]
            # Both queued before the writer runs: one batch, two frames.
            sink.tell_nowait(six[0])
            sink.tell_nowait(six[1])
            assert [(await received.receive())[0] for _ in six] == six
            with pytest.raises(trouper.FrameTooLarge, match="max_frame_size"):
                await sink.tell(Blob(b"x" * (limit + 1)))
            with pytest.raises(trouper.FrameTooLarge):
                sink.tell_nowait(Blob(b"x" * (limit + 1)))
            with pytest.raises(trouper.FrameTooLarge):
                await sink.ask(Blob(b"x" * (limit + 1)))
            await sink.tell(Blob(b"after"))  # the link is still up
            assert (await received.receive())[0] == Blob(b"after")
            assert trouble(caplog) == []
            assert not issubclass(trouper.FrameTooLarge, trouper.RemoteProtocolError)
