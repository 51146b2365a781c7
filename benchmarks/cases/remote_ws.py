"""remote_ask_ws: trouper's remote ask over ws:// against raw trio-websocket.

The trouper side is ``remote_ask`` with both nodes on ``ws://127.0.0.1:0/trouper``: a
listening node, a child node process (``spawn_node``) that dials it, and an ``Echo`` actor
spawned on the child. The baseline is what a user of trio-websocket alone would write: a
client sends one small binary message (a msgspec-encoded ``Ping``), an echo server in a
second process (this module, run as ``python -m benchmarks.cases.remote_ws``) decodes it
and sends it back re-encoded, sequentially. Connection set-up and ``WARMUP`` round trips
are outside the timed region.
"""

from __future__ import annotations

from functools import partial

import msgspec
import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._net import peer
from benchmarks.cases._timing import clock, rate
from benchmarks.cases.remote import DEADLINE, WARMUP, remote_ask_over

LISTEN = "ws://127.0.0.1:0/trouper"


def trouper_remote_ask_ws(n: int) -> float:
    return remote_ask_over(n, LISTEN)


def trio_websocket_ask(n: int) -> float:
    """Sequential ping-pong of one binary message each way with an echo process."""
    from trio_websocket import WebSocketConnection, open_websocket_url

    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()

    async def round_trip(ws: WebSocketConnection, i: int) -> None:
        await ws.send_message(encoder.encode(Ping(i)))
        reply = decoder.decode(await ws.get_message())
        if reply.n != i:
            raise AssertionError(f"ping-pong {i} answered {reply!r}")

    async def main(port: int) -> float:
        with trio.fail_after(DEADLINE):
            async with open_websocket_url(f"ws://127.0.0.1:{port}/echo") as ws:
                for i in range(WARMUP):
                    await round_trip(ws, i)
                start = clock()
                for i in range(n):
                    await round_trip(ws, i)
                elapsed = clock() - start
        return rate(n, elapsed)

    with peer(module="benchmarks.cases.remote_ws") as port:
        return trio.run(main, port)


# ---------------------------------------------------------------- the echo process


async def _serve_echo() -> None:
    from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

    from benchmarks.cases._net_peer import _announce

    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()

    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                message = await ws.get_message()
                await ws.send_message(encoder.encode(decoder.decode(message)))
        except ConnectionClosed:
            pass  # the client is done

    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(serve_websocket, echo, "127.0.0.1", 0, None))
        _announce(server.port)


if __name__ == "__main__":
    from benchmarks.cases._net_peer import _bounded, _exit_when_stdin_closes

    _exit_when_stdin_closes()
    trio.run(_bounded, _serve_echo)
