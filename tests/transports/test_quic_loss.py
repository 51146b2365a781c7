"""QUIC under loss, duplication and reordering: a simulated network on Trio's
MockClock, two real trouper nodes, real aioquic. Asks must all complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from lossy_net import LossyNetwork
from transport_helpers import Pki

import trouper
from trouper.transports import QuicTransport, get_transport, register_transport


class Echo(trouper.Actor):
    @trouper.handler
    async def double(self, msg: int) -> int:
        return msg * 2

    @trouper.handler
    async def reverse(self, msg: bytes) -> bytes:
        return msg[::-1]

    @trouper.handler
    async def count(self, msg: str) -> AsyncIterator[int]:
        for i in range(int(msg)):
            yield i


@asynccontextmanager
async def quic_on(net: LossyNetwork) -> AsyncIterator[None]:
    # Load the built-in transport first: run before any other test loaded it,
    # there would be nothing to put back, and the lossy one would stay.
    get_transport("quic")
    previous = register_transport(QuicTransport(network=net.open_endpoint))
    try:
        yield
    finally:
        assert previous is not None
        register_transport(previous)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_asks_complete_under_ten_percent_loss(
    pki: Pki, autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    tls = pki.config("node")
    with trio.fail_after(3600):  # virtual seconds
        async with trio.open_nursery() as nursery:
            net = LossyNetwork(
                nursery, seed=seed, loss=0.10, duplicate=0.02, reorder=0.05, delay=0.01
            )
            async with (
                quic_on(net),
                trouper.open_node("a", cookie="c", listen="quic://127.0.0.1:0", tls=tls) as a,
            ):
                await a.spawn(Echo, name="echo")
                async with trouper.open_node(
                    "b", cookie="c", listen="quic://127.0.0.1:0", tls=tls
                ) as b:
                    await b.connect(a.addresses[0])
                    echo = await b.lookup("echo", timeout=60)
                    assert echo is not None
                    for i in range(100):
                        assert await echo.ask(i, timeout=60) == 2 * i
                    results: dict[int, int] = {}

                    async def ask(i: int) -> None:
                        results[i] = await echo.ask(i, timeout=60)

                    async with trio.open_nursery() as askers:
                        for i in range(200):
                            askers.start_soon(ask, i)
                    assert results == {i: 2 * i for i in range(200)}
                    blob = bytes(range(256)) * 1024  # 256 KiB: about 200 packets each way
                    assert await echo.ask(blob, timeout=60) == blob[::-1]
                    async with echo.stream("300") as items:
                        assert [item async for item in items] == list(range(300))
            nursery.cancel_scope.cancel()
    # The network really was that bad.
    assert net.stats.dropped > 0.05 * net.stats.sent
    assert net.stats.duplicated > 0 and net.stats.reordered > 0


class Source(trouper.Actor):
    @trouper.handler
    async def chunks(self, msg: int) -> AsyncIterator[bytes]:
        for i in range(msg):
            yield bytes([i % 256]) * 16384


async def test_reordering_is_learned_instead_of_cutting_the_window(
    pki: Pki, autojump_clock: trio.testing.MockClock
) -> None:
    """aioquic alone takes every overtaken packet for a loss; the transport's
    recovery notices the late acknowledgements, widens its thresholds and
    undoes the window cuts (see trouper.transports._quic_recovery)."""
    tls = pki.config("node")
    with trio.fail_after(3600):  # virtual seconds
        async with trio.open_nursery() as nursery:
            net = LossyNetwork(nursery, seed=7, reorder=0.01, delay=0.025)
            async with (
                quic_on(net),
                trouper.open_node("a", cookie="c", listen="quic://127.0.0.1:0", tls=tls) as a,
                trouper.open_node("b", cookie="c", listen="quic://127.0.0.1:0", tls=tls) as b,
            ):
                await a.spawn(Source, name="source")
                await b.connect(a.addresses[0])
                source = await b.lookup("source", timeout=60)
                assert source is not None
                async with source.stream(400, window=32) as items:
                    received = [item async for item in items]
                assert [item[0] for item in received] == [i % 256 for i in range(400)]
                link = a.remote.peers["b"].conn  # type: ignore[attr-defined]
                assert link is not None
                recovery = link.stream.session.quic._loss  # type: ignore[attr-defined]
            nursery.cancel_scope.cancel()
    assert net.stats.reordered > 0
    assert recovery.spurious_losses > 0
    assert recovery.packet_threshold > 3 or recovery.time_threshold > 9 / 8
