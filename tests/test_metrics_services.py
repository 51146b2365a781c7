"""RPC and web gateway metrics (trouper.observability), after real calls:
a proxy call between two nodes, rate limits, retries, a breaker, and real
HTTP requests and WebSocket messages to a real gateway."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

import trouper
from trouper.observability import metrics_text
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession, open_gateway

COOKIE = b"metrics-services"
NO_WAIT = trouper.Backoff(initial=0.0, maximum=0.0, jitter=0.0)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(node: trouper.Node) -> Samples:
    body, _ = metrics_text(node)
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll state that another node sends over a socket, with a deadline."""
    with trio.fail_after(timeout):
        while True:
            if predicate():
                return
            await trio.sleep(0.01)


@trouper.service("metered")
class Metered(trouper.Actor):
    @trouper.rpc
    async def echo(self, n: int) -> int:
        return n

    @trouper.rpc(idempotent=True)
    async def refuse(self) -> int:
        raise trouper.RateLimited("refused for the test", retry_delay=0.0)


@trouper.service("metered-limited", middleware=[trouper.RateLimit(rate=0.001, burst=2)])
class Limited(trouper.Actor):
    @trouper.rpc
    async def hit(self) -> int:
        return 1


async def test_rpc_durations_on_both_sides_of_a_remote_proxy_call() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("r0", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            trouper.open_node(
                "r1", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE
            ) as b,
        ):
            await a.wait_for_members(2)
            await b.spawn(Metered)
            proxy = a.proxy(Metered)
            await eventually(lambda: bool(a.registry.members("metered")))  # by gossip
            for i in range(5):
                assert await proxy.echo(i) == i
            client = value(
                scrape(a),
                "rpc_client_call_duration_seconds_count",
                rpc_service="metered",
                rpc_method="echo",
            )
            server = value(
                scrape(b),
                "rpc_server_call_duration_seconds_count",
                rpc_service="metered",
                rpc_method="echo",
            )
            assert (client, server) == (5, 5)
            seconds = value(
                scrape(a),
                "rpc_client_call_duration_seconds_sum",
                rpc_service="metered",
                rpc_method="echo",
            )
            assert seconds > 0
            # the caller's side records nothing as a server, and vice versa
            assert ("rpc_server_call_duration_seconds_count", ()) not in scrape(a)


async def test_rate_limits_retries_and_breaker_changes_are_counted() -> None:
    with trio.fail_after(20):
        async with trouper.open_node(seed=3) as node:
            await node.spawn(Limited)
            limited = node.proxy(Limited)
            assert await limited.hit() == 1
            assert await limited.hit() == 1
            with pytest.raises(trouper.RateLimited):
                await limited.hit()
            samples = scrape(node)
            assert (
                value(samples, "trouper_rpc_rate_limited_total", rpc_service="metered-limited") == 1
            )
            count = value(
                samples,
                "rpc_server_call_duration_seconds_count",
                rpc_service="metered-limited",
                rpc_method="hit",
            )
            assert count == 3

            members = [await node.spawn(Metered) for _ in range(2)]
            retrying = node.proxy(
                Metered,
                retry=trouper.Retry(attempts=2, backoff=NO_WAIT),
                breaker=trouper.Breaker(failures=10**6),
                members=members,
            )
            for _ in range(3):
                with pytest.raises(trouper.RateLimited):
                    await retrying.refuse()
            samples = scrape(node)
            assert value(samples, "trouper_rpc_retries_total", rpc_service="metered") == 3

            gone = await node.spawn(Metered)
            await node.stop(gone)
            breaking = node.proxy(Metered, breaker=trouper.Breaker(failures=2), members=[gone])
            for _ in range(2):
                with pytest.raises(trouper.ActorDead):
                    await breaking.echo(1)
            with pytest.raises(trouper.CircuitOpen):
                await breaking.echo(1)
            samples = scrape(node)
            opened = value(
                samples, "trouper_rpc_breaker_changes_total", rpc_service="metered", state="open"
            )
            assert opened == 1


class Echo(WebSocketSession):
    def __init__(self, connection: WebSocketConnection) -> None:
        super().__init__(connection)

    async def on_text(self, text: str) -> None:
        self.send_text(text)


async def test_gateway_requests_connections_and_frames() -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node, open_gateway(node, WebGateway(session=Echo)) as gw:
            async with httpx.AsyncClient(base_url=gw.url) as client:
                for _ in range(3):
                    assert (await client.get("/healthz")).status_code == 200
                assert (await client.get("/readyz")).status_code == 200
                assert (await client.get("/no/such/page")).status_code == 404
            async with open_websocket_url(gw.ws_url) as ws:
                for i in range(4):
                    await ws.send_message(f"m{i}")
                    assert await ws.get_message() == f"m{i}"
                samples = scrape(node)
                assert value(samples, "trouper_web_connections_open") == 1
            samples = scrape(node)
            assert value(samples, "trouper_web_connections_accepted_total") == 1
            assert value(samples, "trouper_web_frames_total", direction="received") == 4
            assert value(samples, "trouper_web_frames_total", direction="sent") == 4
            assert value(samples, "trouper_web_slow_consumer_disconnects_total") == 0
            healthz = value(samples, "trouper_web_request_duration_seconds_count", route="/healthz")
            assert healthz == 3
            assert (
                value(samples, "trouper_web_request_duration_seconds_count", route="/readyz") == 1
            )
            assert value(samples, "trouper_web_request_duration_seconds_count", route="other") == 1
