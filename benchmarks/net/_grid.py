"""One grid cell for one transport: a fresh forwarder, server node and client node.

Every run starts from scratch, so no TCP connection (or QUIC congestion state) carries
what it learnt in one cell into the next.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.net import _procs
from benchmarks.net._link import ADDRESS_B, Link, in_namespace

PORTS = {"tcp": 7001, "quic": 7002, "tls": 7003}
TLS_SCHEMES = {"quic", "tls"}
READY_TIMEOUT = 60.0
# What the client needs beyond its timed windows: start-up, connect and sanity ask (30 s),
# the last asks' timeouts, and slack for a slow machine.
CLIENT_SLACK = 120.0


@dataclass(frozen=True, slots=True)
class Cell:
    loss: float  # 0..1
    rtt_ms: float

    @property
    def label(self) -> str:
        return f"loss{self.loss * 100:g}_rtt{self.rtt_ms:g}ms"


@dataclass(frozen=True, slots=True)
class Settings:
    duration: float
    warmup: float
    askers: int
    chunk: int
    window: int
    ask_timeout: float
    reorder: float
    seed: int

    def reorder_extra_ms(self, cell: Cell) -> float:
        # A reordered packet is held up to a quarter RTT more (at least 1 ms), so it lands
        # behind some of the packets sent after it, as on a multipath or wireless hop.
        return max(1.0, cell.rtt_ms / 4)

    def client_timeout(self) -> float:
        return self.warmup + 3 * self.duration + 3 * self.ask_timeout + CLIENT_SLACK


def url(scheme: str) -> str:
    return f"{scheme}://{ADDRESS_B}:{PORTS[scheme]}"


def _forwarder_argv(link: Link, cell: Cell, settings: Settings) -> list[str]:
    return _procs.python(
        "benchmarks.net._forwarder",
        str(link.fd_a),
        str(link.fd_b),
        f"--loss={cell.loss}",
        f"--rtt-ms={cell.rtt_ms}",
        f"--reorder={settings.reorder}",
        f"--reorder-extra-ms={settings.reorder_extra_ms(cell)}",
        f"--seed={settings.seed}",
    )


def _node_argv(role: str, scheme: str, certs: Path | None, settings: Settings) -> list[str]:
    argv = _procs.python("benchmarks.net._node", role, url(scheme))
    if scheme in TLS_SCHEMES and certs is not None:
        argv.append(f"--certs={certs}")
    if role == "client":
        argv += [
            f"--duration={settings.duration}",
            f"--warmup={settings.warmup}",
            f"--askers={settings.askers}",
            f"--chunk={settings.chunk}",
            f"--window={settings.window}",
            f"--ask-timeout={settings.ask_timeout}",
        ]
    return argv


def run(
    link: Link, cell: Cell, scheme: str, certs: Path | None, settings: Settings
) -> dict[str, Any]:
    """Measure one transport in one cell; ``{"error": ...}`` instead of figures if it failed."""
    forwarder = _procs.start(_forwarder_argv(link, cell, settings), pass_fds=(link.fd_a, link.fd_b))
    server = client = None
    result: dict[str, Any]
    try:
        server = _procs.start(in_namespace(link.ns_b, _node_argv("serve", scheme, certs, settings)))
        _procs.read_json(server.stdout, READY_TIMEOUT, f"{scheme} server")
        client = _procs.start(
            in_namespace(link.ns_a, _node_argv("client", scheme, certs, settings))
        )
        result = _procs.read_json(client.stdout, settings.client_timeout(), f"{scheme} client")
    except (TimeoutError, RuntimeError) as exc:
        result = {"error": str(exc)}
    finally:
        for proc in (client, server):
            if proc is not None:
                _procs.stop(proc)
        stats = _procs.stop(forwarder).strip()
    result["forwarder"] = json.loads(stats) if stats else None
    return result


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _combine_asks(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "asks": sum(p["asks"] for p in parts),
        "failed": sum(p["failed"] for p in parts),
        "p50_ms": _median([p["p50_ms"] for p in parts if p["p50_ms"] is not None]),
        "p99_ms": _median([p["p99_ms"] for p in parts if p["p99_ms"] is not None]),
        "max_ms": max((p["max_ms"] for p in parts if p["max_ms"] is not None), default=None),
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from repeated runs of a cell: the median of each figure, as ``make bench``
    takes the median of its samples; counts are summed, and every run is kept."""
    good = [run for run in runs if not run.get("error")]
    if len(runs) == 1 or not good:
        return runs[-1]
    hol = _combine_asks([run["hol"] for run in good])
    hol["bulk_mib_s"] = _median([run["hol"]["bulk_mib_s"] for run in good])
    forwarders = [run["forwarder"] for run in runs if run.get("forwarder")]
    combined: dict[str, Any] = {
        "ask": _combine_asks([run["ask"] for run in good]),
        "bulk_mib_s": _median([run["bulk_mib_s"] for run in good]),
        "hol": hol,
        "forwarder": {
            key: sum(f.get(key, 0) for f in forwarders) for key in ("packets_in", "dropped")
        },
        "runs": runs,
    }
    if len(good) < len(runs):
        combined["errors"] = [run["error"] for run in runs if run.get("error")]
    return combined
