"""Which origins a collab gateway lets in (``GatewayOrigins``, the page's
sidebar after a failover): the cluster's gateways, those that died
included, and nothing else; bounded, and a flood of made-up origins costs
one lookup per second.

Two nodes over real TCP, each with its announcer; the URLs the announcers
give are names only (no gateway needs to serve for this).
"""

import trio
from examples.collab._gateways import (
    FORGET_AFTER,
    MAX_REMEMBERED,
    GatewayAnnouncer,
    GatewayOrigins,
)

import trouper

COOKIE = "collab-gateways-test"
URL_A = "http://a.test:8001"
URL_B = "http://b.test:8002"


async def _until_let_in(origins: GatewayOrigins, origin: str) -> None:
    while not await origins(origin):  # noqa: ASYNC110 - another node's registry, no event
        await trio.sleep(0.1)


async def test_a_gateway_that_died_is_still_let_in_and_strangers_are_not() -> None:
    with trio.fail_after(20):
        async with trouper.open_node("b", listen="tcp://127.0.0.1:0", cookie=COOKIE) as b:
            origins_b = GatewayOrigins(b)
            await b.spawn(GatewayAnnouncer, URL_B, origins_b)
            async with trouper.open_node("a", seeds=b.addresses, cookie=COOKIE) as a:
                origins_a = GatewayOrigins(a)
                await a.spawn(GatewayAnnouncer, URL_A, origins_a)
                await _until_let_in(origins_b, URL_A)
                await _until_let_in(origins_a, URL_B)
                assert await origins_a(URL_A)  # its own gateway, listed without asking itself
            # a is gone; pages it served call b now, from a's origin.
            await b.wait_for_members(1, timeout=10)
            assert await origins_b(URL_A)

            # A stranger: one lookup, then none for ORIGINS_REFRESH, whatever comes.
            assert not await origins_b("http://evil.test")
            after = origins_b.next_lookup
            for n in range(100):
                assert not await origins_b(f"http://evil{n}.test")
            assert origins_b.next_lookup == after
            assert set(origins_b.seen) == {URL_A, URL_B}


def test_remembered_gateways_are_bounded_in_number_and_time() -> None:
    origins = GatewayOrigins(None)  # type: ignore[arg-type]  # remember() needs no node
    origins.remember([f"http://n{i}.test" for i in range(MAX_REMEMBERED + 50)], now=0.0)
    assert len(origins.seen) == MAX_REMEMBERED
    assert "http://n0.test" not in origins.seen  # the least recently listed went
    origins.remember(["http://n60.test"], now=1.0)  # listed again: kept longest
    origins.remember(["http://new.test"], now=FORGET_AFTER + 0.5)
    assert set(origins.seen) == {"http://n60.test", "http://new.test"}
