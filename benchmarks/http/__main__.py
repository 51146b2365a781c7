"""``python -m benchmarks.http`` (``make bench-http``): the gateway's HTTP path.

Cases, each one JSON line on stdout (progress on stderr), every baseline
measured in the same run:

* ``http_hello_vs_hypercorn``: ``GET /hello`` requests/s over 64 keep-alive
  connections, the gateway (its own HTTP/1.1 path, a route) against a plain
  ASGI hello on hypercorn's trio worker (target ratio >= 5.0);
* ``http_hello_vs_uvicorn``: the same against uvicorn with httptools on
  asyncio (target ratio >= 0.6);
* ``http_users_p99``: ``GET /api/users/{id}`` (a route asking an actor),
  its capacity first, then p50/p99 at half of it (target p99 < 10 ms);
* ``http_idle_held``: 10,000 idle keep-alive connections held while the
  hello load runs (target: all held, p99 < 100 ms).

The load generator is ``wrk -t1`` (one thread, leaving a core to the
server), whose own CPU is reported (``wrk_cpu_percent``); the fixed-rate
phase uses this package's own client on plain sockets and epoll (wrk cannot
hold a rate), whose CPU is reported too (``client_cpu_percent``).
``--smoke`` runs every case small and short with the Python client only,
for the tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
from typing import Any

import trio

from . import _client, _fixed
from ._procs import ROOT, Server, raise_nofile, run_wrk

HOST = "127.0.0.1"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections held")
    parser.add_argument("--smoke", action="store_true", help="small and short, no wrk")
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.connections, args.idle = 1.0, 4, 50
    return args


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


class Load:
    """wrk, or the Python client for a smoke run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def throughput(self, server: Server, path: str) -> dict[str, Any]:
        args = self.args
        cpu0 = server.cpu()
        if args.smoke:
            result = trio.run(
                _client.closed_loop, HOST, server.port, path, args.connections, args.duration
            )
        else:
            url = f"http://{HOST}:{server.port}{path}"
            result = dict(run_wrk(url, args.connections, args.duration))
        result["server_cpu_percent"] = round(100 * (server.cpu() - cpu0) / args.duration, 1)
        progress(f"  {server.kind} {path}: {result}")
        return result


def ratio_line(
    name: str, ours: dict[str, Any], base: dict[str, Any], baseline: str, target: float
) -> dict[str, Any]:
    ratio = ours["rps"] / base["rps"]
    return {
        "name": name,
        "value": ours["rps"],
        "unit": "requests/s",
        "baseline": baseline,
        "baseline_value": base["rps"],
        "ratio": round(ratio, 3),
        "target": f"ratio >= {target}",
        "meets_target": ratio >= target,
        "trouper": ours,
        "baseline_detail": base,
    }


def hello_cases(load: Load) -> None:
    results = {}
    for kind in ("trouper", "hypercorn", "uvicorn"):
        progress(f"hello on {kind}")
        server = Server(kind)
        try:
            load.throughput(server, "/hello")  # warm up
            results[kind] = load.throughput(server, "/hello")
        finally:
            server.stop()
    ours = results["trouper"]
    emit(ratio_line("http_hello_vs_hypercorn", ours, results["hypercorn"], "hypercorn-trio", 5.0))
    emit(ratio_line("http_hello_vs_uvicorn", ours, results["uvicorn"], "uvicorn-httptools", 0.6))


def users_case(load: Load) -> None:
    args = load.args
    progress("/api/users/{id} on trouper: capacity, then half of it")
    server = Server("trouper")
    try:
        capacity = load.throughput(server, "/api/users/7")
        rate = max(10.0, capacity["rps"] / 2)
        cpu0, mine0 = server.cpu(), own_cpu()
        fixed = _fixed.fixed_rate(
            HOST, server.port, "/api/users/7", args.connections, rate, args.duration
        )
        fixed["server_cpu_percent"] = round(100 * (server.cpu() - cpu0) / args.duration, 1)
        fixed["client_cpu_percent"] = round(100 * (own_cpu() - mine0) / args.duration, 1)
        progress(f"  at {rate:.0f}/s: {fixed}")
    finally:
        server.stop()
    p99 = fixed["p99_ms"]
    emit(
        {
            "name": "http_users_p99",
            "value": p99,
            "unit": "ms",
            "p50_ms": fixed["p50_ms"],
            "rate": round(rate, 1),
            "capacity_rps": capacity["rps"],
            "errors": fixed["errors"],
            "target": "p99 < 10 ms at half of capacity",
            "meets_target": p99 is not None and p99 < 10.0 and fixed["errors"] == 0,
            "capacity": capacity,
        }
    )


def idle_case(load: Load) -> None:
    args = load.args
    progress(f"{args.idle} idle keep-alive connections, plus the hello load")
    server = Server("trouper")
    opener = None
    try:
        argv = [sys.executable, "-m", "benchmarks.http._idle", str(server.port), str(args.idle)]
        opener = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert opener.stdin is not None and opener.stdout is not None
        held = int(opener.stdout.readline().split()[1])
        busy = load.throughput(server, "/hello")
        opener.stdin.write("\n")
        opener.stdin.flush()
        alive = int(opener.stdout.readline().split()[1])
    finally:
        if opener is not None:
            opener.kill()
            opener.wait()
        server.stop()
    p99 = busy["p99_ms"]
    emit(
        {
            "name": "http_idle_held",
            "value": alive,
            "unit": "connections",
            "opened": held,
            "hello_rps": busy["rps"],
            "hello_p99_ms": p99,
            "target": f"{args.idle} held, p99 < 100 ms",
            "meets_target": alive == args.idle and p99 is not None and p99 < 100.0,
            "load": busy,
        }
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    raise_nofile()
    if not args.smoke and shutil.which("wrk") is None:
        progress("wrk is missing: `make bench-http` installs it (Debian's package)")
        return 2
    load = Load(args)
    hello_cases(load)
    users_case(load)
    idle_case(load)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
