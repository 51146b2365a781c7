"""The fixed-rate client of the HTTP benchmark: plain non-blocking sockets and
``selectors`` (epoll), no event loop library, to leave the CPU to the server.

Requests are scheduled at a fixed total rate, round-robin over the
connections; a connection still waiting for its previous answer sends the
next request as soon as that answer arrives, and every latency is measured
from the request's *scheduled* time (no coordinated omission).
"""

from __future__ import annotations

import selectors
import socket
import time
from typing import Any

from ._client import percentile


class _Conn:
    __slots__ = ("buffer", "due", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.due: list[float] = []  # scheduled times of requests sent, unanswered


def _answers(conn: _Conn) -> int:
    """How many whole responses ``conn.buffer`` holds; consumes them."""
    count = 0
    while True:
        head_end = conn.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return count
        head = conn.buffer[:head_end].lower() + b"\r\n"
        at = head.find(b"content-length:") + len(b"content-length:")
        length = int(head[at : head.find(b"\r\n", at)])
        end = head_end + 4 + length
        if len(conn.buffer) < end:
            return count
        if not conn.buffer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {conn.buffer[:60]!r}")
        conn.buffer = conn.buffer[end:]
        count += 1


def fixed_rate(
    host: str, port: int, path: str, connections: int, rate: float, duration: float
) -> dict[str, Any]:
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    conns = []
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Conn(sock)
        selector.register(sock, selectors.EVENT_READ, conn)
        conns.append(conn)
    total = int(rate * duration)
    start = time.monotonic() + 0.1
    latencies: list[float] = []
    sent = 0
    waiting: list[tuple[_Conn, float]] = []  # scheduled, but its connection is busy
    while len(latencies) < total:
        now = time.monotonic()
        while sent < total and start + sent / rate <= now:
            conn = conns[sent % connections]
            scheduled = start + sent / rate
            sent += 1
            if conn.due:
                waiting.append((conn, scheduled))
            else:
                conn.due.append(scheduled)
                conn.sock.sendall(request)
        timeout = None if sent >= total else max(0.0, start + sent / rate - time.monotonic())
        for key, _ in selector.select(timeout):
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a connection")
            conn.buffer += data
            done = time.monotonic()
            for _ in range(_answers(conn)):
                latencies.append(done - conn.due.pop(0))
            if not conn.due:
                for index, (other, scheduled) in enumerate(waiting):
                    if other is conn:
                        del waiting[index]
                        conn.due.append(scheduled)
                        conn.sock.sendall(request)
                        break
    for conn in conns:
        conn.sock.close()
    ordered = sorted(latencies)
    p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
    return {
        "requests": len(ordered),
        "rps": round(len(ordered) / duration, 1),
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "errors": 0,
    }
