"""transport_echo_tcp: a ``trouper.transports`` session's echo round trips over tcp
against raw trio TCP ping-pong.

Both sides run in one process and one ``trio.run`` (server and client alike), so the
two measurements share the same CPU budget. The trouper side is ``serve(tcp://...)``
with an echo handler and ``connect()``: each round trip is ``send`` then ``receive``
of one ``SIZE``-byte message. The baseline is what a user of trio alone would write
for whole messages: ``trio.serve_tcp`` with an echo handler and a client, both
length-prefixing each message (``benchmarks.cases._net.frame``/``FrameReader``), one
``send_all`` per message. Connection set-up and ``WARMUP`` round trips are untimed.
"""

from __future__ import annotations

from functools import partial

import trio

from benchmarks.cases._net import FrameReader, frame
from benchmarks.cases._timing import clock, rate

SIZE = 256
WARMUP = 200
DEADLINE = 120.0


def trouper_session_echo(n: int) -> float:
    from trouper.transports import MessageSession, connect, serve

    async def echo(session: MessageSession) -> None:
        async for message in session:
            await session.send(message)

    async def main() -> float:
        payload = b"m" * SIZE
        with trio.fail_after(DEADLINE):
            async with (
                serve("tcp://127.0.0.1:0", echo) as server,
                connect(server.url) as session,
            ):
                for _ in range(WARMUP):
                    await session.send(payload)
                    await session.receive()
                start = clock()
                for _ in range(n):
                    await session.send(payload)
                    reply = await session.receive()
                elapsed = clock() - start
                if reply != payload:
                    raise AssertionError("the echo changed the message")
        return rate(n, elapsed)

    return trio.run(main)


def trio_tcp_echo(n: int) -> float:
    async def echo(stream: trio.SocketStream) -> None:
        reader = FrameReader(stream)
        while bodies := await reader.receive():
            for body in bodies:
                await stream.send_all(frame(body))

    async def main() -> float:
        payload = b"m" * SIZE
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
                port = listeners[0].socket.getsockname()[1]
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                reader = FrameReader(stream)
                for _ in range(WARMUP):
                    await stream.send_all(frame(payload))
                    await reader.receive()
                start = clock()
                for _ in range(n):
                    await stream.send_all(frame(payload))
                    (reply,) = await reader.receive()
                elapsed = clock() - start
                if reply != payload:
                    raise AssertionError("the echo changed the message")
                await stream.aclose()
                nursery.cancel_scope.cancel()
        return rate(n, elapsed)

    return trio.run(main)
