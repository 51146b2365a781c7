"""A small HTTP/1.1 load client on trio raw sockets (no HTTP library).

``closed_loop``: each connection sends its next request when the answer
came (throughput, what wrk does; the smoke run uses it instead of wrk).
The benchmark's fixed-rate phase has a leaner client of its own
(``_fixed``).
"""

from __future__ import annotations

import math
from typing import Any

import trio


def request_bytes(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


class Connection:
    """One keep-alive connection reading one response at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def exchange(self, request: bytes) -> int:
        """Send ``request``, read the whole answer; return its status."""
        await self.stream.send_all(request)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await self._read()
        self.buffer = rest[length:]
        return int(head.split(b" ", 2)[1])

    async def _read(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        return bytes(data)


async def _open(host: str, port: int, n: int) -> list[Connection]:
    return [Connection(await trio.open_tcp_stream(host, port)) for _ in range(n)]


def percentile(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[max(0, index)]


async def closed_loop(
    host: str, port: int, path: str, connections: int, duration: float
) -> dict[str, Any]:
    conns = await _open(host, port, connections)
    request = request_bytes(host, path)
    latencies: list[float] = []
    errors = 0
    deadline = trio.current_time() + duration

    async def drive(conn: Connection) -> None:
        nonlocal errors
        while trio.current_time() < deadline:
            sent = trio.current_time()
            if await conn.exchange(request) != 200:
                errors += 1
            latencies.append(trio.current_time() - sent)

    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(drive, conn)
    for conn in conns:
        await conn.stream.aclose()
    return _summary(latencies, duration, errors)


def _summary(latencies: list[float], duration: float, errors: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
    return {
        "requests": len(ordered),
        "rps": round(len(ordered) / duration, 1),
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "errors": errors,
    }
