"""How many packets per second the forwarder moves: raw kernel TCP through an unimpaired wire.

``python -m benchmarks.net._ceiling recv HOST PORT`` accepts one connection and counts bytes
until it closes; ``send HOST PORT SECONDS`` writes 1 MiB buffers for that long. Both are
plain blocking sockets: the kernel does the TCP work, so the forwarder is the bottleneck.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

from benchmarks.net import _procs
from benchmarks.net._link import ADDRESS_B, Link, in_namespace

PORT = 7100
BUFFER = 1 << 20


def _receive(host: str, port: int) -> None:
    with socket.create_server((host, port)) as server:
        print(json.dumps({"ready": port}), flush=True)
        conn, _ = server.accept()
        total, started = 0, time.monotonic()
        with conn:
            buffer = bytearray(BUFFER)
            while count := conn.recv_into(buffer):
                total += count
        print(json.dumps({"bytes": total, "seconds": time.monotonic() - started}), flush=True)


def _send(host: str, port: int, seconds: float) -> None:
    payload = bytes(BUFFER)
    with socket.create_connection((host, port), timeout=30) as conn:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            conn.sendall(payload)


def measure(link: Link, seconds: float, rtt_ms: float) -> dict[str, Any]:
    """Bulk TCP from a to b through a forwarder adding only ``rtt_ms``; its counters too."""
    forwarder_argv = _procs.python(
        "benchmarks.net._forwarder", str(link.fd_a), str(link.fd_b), "--rtt-ms", str(rtt_ms)
    )
    forwarder = _procs.start(forwarder_argv, pass_fds=(link.fd_a, link.fd_b))
    receiver = sender = None
    try:
        module = "benchmarks.net._ceiling"
        receive_argv = _procs.python(module, "recv", ADDRESS_B, str(PORT))
        receiver = _procs.start(in_namespace(link.ns_b, receive_argv))
        _procs.read_json(receiver.stdout, 30, "ceiling receiver")
        send_argv = _procs.python(module, "send", ADDRESS_B, str(PORT), str(seconds))
        sender = _procs.start(in_namespace(link.ns_a, send_argv))
        if sender.wait(seconds + 60) != 0:
            raise RuntimeError(
                f"raw TCP from {link.ns_a} to {ADDRESS_B} failed: the forwarded link does not work"
            )
        received = _procs.read_json(receiver.stdout, 60, "ceiling receiver")
    finally:
        for proc in (sender, receiver):
            if proc is not None:
                _procs.stop(proc)
        stats = json.loads(_procs.stop(forwarder) or "{}")
    elapsed = received["seconds"]
    return {
        "rtt_ms": rtt_ms,
        "tcp_mib_s": round(received["bytes"] / elapsed / 2**20, 1),
        "packets_per_s": round(stats.get("packets_in", 0) / elapsed),
        "peak_pps": stats.get("peak_pps"),
        "forwarder_busy": round(stats.get("busy_s", 0.0) / elapsed, 2),
    }


def main(argv: list[str]) -> int:
    match argv:
        case ["recv", host, port]:
            _receive(host, int(port))
        case ["send", host, port, seconds]:
            _send(host, int(port), float(seconds))
        case _:
            print("usage: _ceiling recv HOST PORT | send HOST PORT SECONDS", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
