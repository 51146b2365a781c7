"""The far end of the raw-network baselines: ``python -m benchmarks.cases._net_peer KIND``.

Kinds:

* ``echo``: accept one TCP connection; decode each frame's ``Ping`` and send it back
  re-encoded, until the client closes.
* ``sink N``: accept one TCP connection; decode ``N`` frames, then answer one frame holding
  ``Ping(N)`` as the acknowledgement.
* ``grpc``: a grpcio server whose ``/bench.Echo/Ping`` unary method decodes the request
  ``Ping`` and answers it re-encoded (raw bytes in and out, no protoc).

Each binds 127.0.0.1 port 0, prints the port as its first stdout line, and exits as soon as
its stdin closes (see ``benchmarks.cases._net.peer``) or after ``DEADLINE`` seconds.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import msgspec
import trio

from benchmarks.cases._messages import Ping
from benchmarks.cases._net import FrameReader, frame

DEADLINE = 600.0
GRPC_SERVICE = "bench.Echo"
GRPC_METHOD = f"/{GRPC_SERVICE}/Ping"


def _exit_when_stdin_closes() -> None:
    def watch() -> None:
        while os.read(0, 4096):  # unbuffered: no lock left held at interpreter exit
            pass
        os._exit(0)

    threading.Thread(target=watch, name="stdin watchdog", daemon=True).start()


def _announce(port: int) -> None:
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()


async def _accept_one() -> trio.SocketStream:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    _announce(listeners[0].socket.getsockname()[1])
    stream = await listeners[0].accept()
    for listener in listeners:
        await listener.aclose()
    return stream


async def echo() -> None:
    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()
    stream = await _accept_one()
    reader = FrameReader(stream)
    async with stream:
        while bodies := await reader.receive():
            replies = (frame(encoder.encode(decoder.decode(body))) for body in bodies)
            await stream.send_all(b"".join(replies))


async def sink(n: int) -> None:
    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()
    stream = await _accept_one()
    reader = FrameReader(stream)
    count = 0
    async with stream:
        while count < n:
            bodies = await reader.receive()
            if not bodies:
                raise ConnectionError(f"sender closed after {count} of {n} frames")
            for body in bodies:
                decoder.decode(body)
            count += len(bodies)
        await stream.send_all(frame(encoder.encode(Ping(count))))
        while await reader.receive():
            pass


def grpc_server() -> None:
    from concurrent import futures

    import grpc

    def ping(request: bytes, _context: Any) -> bytes:
        return msgspec.msgpack.encode(msgspec.msgpack.decode(request, type=Ping))

    handler = grpc.method_handlers_generic_handler(
        GRPC_SERVICE, {"Ping": grpc.unary_unary_rpc_method_handler(ping)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _announce(port)
    server.wait_for_termination(timeout=DEADLINE)


def main(argv: list[str]) -> int:
    _exit_when_stdin_closes()
    match argv:
        case ["echo"]:
            trio.run(_bounded, echo)
        case ["sink", n]:
            trio.run(_bounded, sink, int(n))
        case ["grpc"]:
            grpc_server()
        case _:
            print("usage: python -m benchmarks.cases._net_peer echo|sink N|grpc", file=sys.stderr)
            return 2
    return 0


async def _bounded(fn: Any, *args: Any) -> None:
    with trio.fail_after(DEADLINE):
        await fn(*args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
