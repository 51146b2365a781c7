"""The fast path's server itself (``H1Server``): pipelining, idle time, draining."""

from __future__ import annotations

import trio
import trio.testing

from trouper.web._h1 import H1Limits, Request, Response
from trouper.web._h1serve import H1Config, H1Server


async def read_response(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        assert chunk, data
        data += chunk
    return data


async def test_drain_finishes_running_requests_and_closes_idle_ones() -> None:
    release = trio.Event()
    started = trio.Event()

    async def handler(request: Request) -> Response:
        if request.path == "/slow":
            started.set()
            await release.wait()
        return Response(b"done")

    server = H1Server(handler, H1Config(limits=H1Limits()))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            await nursery.start(server.serve_listeners, listeners)
            idle = await trio.open_tcp_stream("127.0.0.1", port)
            await idle.send_all(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(idle)).startswith(b"HTTP/1.1 200")
            busy = await trio.open_tcp_stream("127.0.0.1", port)
            await busy.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
            drained = trio.Event()

            async def drain() -> None:
                await server.drain()
                drained.set()

            nursery.start_soon(drain)
            assert await idle.receive_some(100) == b""  # the idle one is closed
            await trio.testing.wait_all_tasks_blocked()
            assert not drained.is_set() and server.active == 1
            release.set()
            answer = await read_response(busy)
            assert answer.startswith(b"HTTP/1.1 200") and b"connection: close" in answer
            await drained.wait()
            assert server.active == 0
            try:
                late = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                pass  # the listener is closed
            else:
                assert await late.receive_some(100) == b""
            nursery.cancel_scope.cancel()


async def test_pipelined_requests_are_answered_in_order_in_one_write() -> None:
    async def handler(request: Request) -> Response:
        return Response(request.path.encode())

    server = H1Server(handler)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            await nursery.start(server.serve_listeners, listeners)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            batch = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
            await stream.send_all(batch + b"GET /last HTTP/1.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := await stream.receive_some(4096):
                data += chunk
            bodies = [part.rpartition(b"\r\n\r\n")[2] for part in data.split(b"HTTP/1.1 ")[1:]]
            assert bodies == [b"/0", b"/1", b"/2", b"/last"]
            assert server.requests == 4
            nursery.cancel_scope.cancel()


async def test_expect_100_continue() -> None:
    async def handler(request: Request) -> Response:
        return Response(request.body[::-1])

    server = H1Server(handler, H1Config(limits=H1Limits(max_body=10)))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            await nursery.start(server.serve_listeners, listeners)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            head = (
                b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
            )
            await stream.send_all(head)
            assert await read_response(stream) == b"HTTP/1.1 100 Continue\r\n\r\n"
            await stream.send_all(b"hello")
            answer = await read_response(stream)
            while not answer.endswith(b"olleh"):
                answer += await stream.receive_some(100)
            assert answer.startswith(b"HTTP/1.1 200")
            big = await trio.open_tcp_stream("127.0.0.1", port)
            await big.send_all(head.replace(b"Length: 5", b"Length: 11"))
            assert (await read_response(big)).startswith(b"HTTP/1.1 413")  # no 100 first
            nursery.cancel_scope.cancel()


async def test_a_client_that_reads_nothing_is_idle_too() -> None:
    async def handler(request: Request) -> Response:
        return Response(b"x" * 64 * 1024 * 1024)  # more than the socket buffers hold

    server = H1Server(handler, H1Config(idle_timeout=0.5))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            await nursery.start(server.serve_listeners, listeners)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            while server.requests == 0:  # noqa: ASYNC110 - a counter, not an event
                await trio.sleep(0.01)
            while server.connections:  # the stalled write is given up  # noqa: ASYNC110
                await trio.sleep(0.05)
            await stream.aclose()
            nursery.cancel_scope.cancel()
