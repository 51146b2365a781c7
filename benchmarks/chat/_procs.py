"""Child processes of the chat benchmark: one server and the client processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks._runner import read_line

from ._limits import cpu_seconds, rss_bytes

URL = re.compile(r"(http://\S+?)/? in a browser")
SERVERS = {
    "trouper": "benchmarks.chat.trouper_server",
    "baseline": "benchmarks.chat.baseline_server",
}
#: The load generators: raw sockets in one epoll loop, or trio-websocket (the cross-check).
CLIENTS = {"lean": "benchmarks.chat._lean", "trio": "benchmarks.chat._client"}
GC_OFF = "import gc; gc.disable(); from {} import main; main()"


def progress(text: str) -> None:
    print(f"[bench-chat] {text}", file=sys.stderr, flush=True)


class Fleet:
    """A server and its load generators; ``close()`` kills every one of them."""

    def __init__(self, kind: str, gc_off: bool = False) -> None:
        self.kind = kind
        self.gc_off = gc_off
        self.server: subprocess.Popen[str] | None = None
        self.clients: list[subprocess.Popen[str]] = []
        self.server_log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self.url = ""

    def start_server(self) -> None:
        module = SERVERS[self.kind]
        run = ["-c", GC_OFF.format(module)] if self.gc_off else ["-m", module]
        argv = [sys.executable, *run, "--http", "127.0.0.1:0"]
        if self.kind == "trouper":
            argv += ["--store", "memory://bench"]
        self.server = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self.server_log, text=True
        )
        assert self.server.stdout is not None
        while True:
            line = read_line(self.server.stdout, 60, f"{self.kind} server")
            match = URL.search(line)
            if match:
                self.url = match.group(1).replace("http://", "ws://") + "/ws"
                return

    def server_rss(self) -> int:
        assert self.server is not None
        return rss_bytes(self.server.pid)

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the server, and by all the client processes."""
        assert self.server is not None
        clients = sum(cpu_seconds(client.pid) for client in self.clients)
        return cpu_seconds(self.server.pid), clients

    def drain(self, limit: float = 120.0) -> float:
        """Wait (up to ``limit`` s) until the server and clients idle (< 0.2 CPU s in 1 s)."""
        assert self.server is not None
        pids = [self.server.pid, *(client.pid for client in self.clients)]
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = sum(cpu_seconds(pid) for pid in pids)
            time.sleep(1.0)
            if sum(cpu_seconds(pid) for pid in pids) - before < 0.2:
                break
        return time.monotonic() - started

    def start_clients(
        self, procs: int, connections: int, rooms: int, concurrency: int, client: str = "lean"
    ) -> None:
        for proc in range(procs):
            argv = [sys.executable, "-m", CLIENTS[client], self.url]
            argv += [str(n) for n in (proc, procs, connections, rooms, concurrency)]
            self.clients.append(
                subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        """One JSON line from every client process."""
        deadline = time.monotonic() + timeout
        lines = []
        for number, client in enumerate(self.clients):
            assert client.stdout is not None
            left = max(1.0, deadline - time.monotonic())
            lines.append(json.loads(read_line(client.stdout, left, f"client {number}")))
        return lines

    def command(self, command: dict[str, Any]) -> None:
        for client in self.clients:
            assert client.stdin is not None
            client.stdin.write(json.dumps(command) + "\n")
            client.stdin.flush()

    def server_log_tail(self, lines: int = 5) -> str:
        self.server_log.seek(0)
        return "".join(self.server_log.readlines()[-lines:])

    def close(self) -> None:
        for client in self.clients:
            client.kill()
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        for proc in [*self.clients, *([self.server] if self.server else [])]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.server_log.close()


def merge(reports: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Latency percentiles, losses and duplicates of one phase, all processes merged."""
    hist: dict[int, int] = {}
    sent: dict[str, int] = {}
    members: dict[str, int] = {}
    received: dict[str, int] = {}
    ids: dict[str, dict[str, str]] = {}
    conflicts = 0
    for report in reports:
        for key, count in report["hist"].items():
            hist[int(key)] = hist.get(int(key), 0) + count
        for field, total in (("sent", sent), ("members", members), ("received", received)):
            for room, count in report[field].items():
                total[room] = total.get(room, 0) + count
        for room, room_ids in report["ids"].items():
            known = ids.setdefault(room, {})
            for id_, tag in room_ids.items():
                conflicts += known.setdefault(id_, tag) != tag
        conflicts += report["conflicts"]
    expected = sum(sent.get(room, 0) * held for room, held in members.items())
    deliveries = sum(hist.values())
    result = {
        "rate": rate,
        "sent": sum(sent.values()),
        "deliveries": deliveries,
        "expected": expected,
        "lost": max(0, expected - sum(received.values())),
        "duplicated": sum(r["duplicates"] for r in reports) + conflicts,
        "id_conflicts": conflicts,
        "send_errors": sum(r["send_errors"] for r in reports),
        "held": sum(r["held"] for r in reports),
    }
    for name, q in (("p50_ms", 0.50), ("p99_ms", 0.99), ("max_ms", 1.0)):
        result[name] = _quantile(hist, deliveries, q)
    return result


def _quantile(hist: dict[int, int], total: int, q: float) -> float | None:
    if not total:
        return None
    rank, seen = max(1, int(q * total + 0.5)), 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round((bucket + 1) / 10, 1)
    return None
