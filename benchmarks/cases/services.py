"""local_proxy_call, remote_proxy_call, remote_proxy_vs_grpc: typed RPC
through ``node.proxy`` against a plain ``ask`` of the same actor (locally, and
to a child node process over loopback TCP), and against grpcio's unary call.

Every side moves the same ``Ping`` Struct and checks each answer; set-up and
``WARMUP`` calls are outside the timed region. The proxy has its defaults (a
5 s deadline carried to the server, breakers, round-robin) and no retries.
``EchoService.echo`` never awaits, so its server spares the per-call cancel
scope (docs/services.md, "Deadlines and cancellation"); a method that awaits
pays about 5-7 us more per call for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

import trouper
from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock, rate

DEADLINE = 300.0
WARMUP = 200
COOKIE = b"trouper-benchmarks"
ALLOW = ["benchmarks.cases.service_actors:*"]


@asynccontextmanager
async def echo(remote: bool) -> AsyncIterator[tuple[trouper.Node, trouper.ActorRef]]:
    from benchmarks.cases.service_actors import EchoService

    if not remote:
        async with trouper.open_node() as node:
            yield node, await node.spawn(EchoService)
        return
    async with trouper.open_node(name="a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node:
        await node.spawn_node(name="b", allow_spawn=ALLOW, listen="tcp://127.0.0.1:0")
        yield node, await node.spawn(EchoService, on="b")


def _measure(n: int, remote: bool, proxied: bool) -> float:
    from benchmarks.cases.service_actors import EchoService

    async def main() -> float:
        with trio.fail_after(DEADLINE):
            async with echo(remote) as (node, ref):
                service = node.proxy(EchoService, members=[ref])

                async def one(i: int) -> None:
                    reply = await (service.echo(Ping(i)) if proxied else ref.ask(Ping(i)))
                    if reply.n != i:
                        raise AssertionError(f"call {i} answered {reply!r}")

                for i in range(WARMUP):
                    await one(i)
                start = clock()
                for i in range(n):
                    await one(i)
                elapsed = clock() - start
        return rate(n, elapsed)

    return trio.run(main)


def local_proxy_call(n: int) -> float:
    return _measure(n, remote=False, proxied=True)


def local_plain_ask(n: int) -> float:
    return _measure(n, remote=False, proxied=False)


def remote_proxy_call(n: int) -> float:
    return _measure(n, remote=True, proxied=True)


def remote_plain_ask(n: int) -> float:
    return _measure(n, remote=True, proxied=False)
