"""Writes docs/transport-impairment.md from one run (every run rewrites it)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._runner import REPO_ROOT
from benchmarks.net._grid import Cell, Settings
from benchmarks.net._report import (
    BASELINE,
    GOAL_TEXT,
    HEADER,
    METRICS,
    Results,
    ratio,
    table_rows,
)

DOC = REPO_ROOT / "docs" / "transport-impairment.md"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit} (uncommitted changes)" if git("status", "--porcelain", "src") else commit


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _method(s: Settings, quick: bool, repeats: tuple[int, int]) -> str:
    credit_kib = s.window * s.chunk // 1024
    lines = [
        "- Two network namespaces on this machine, each with a TUN device (MTU 1500) and one",
        "  address (`10.77.0.1`, `10.77.0.2`). Nothing joins them but a userspace forwarder",
        "  (`benchmarks/net/_forwarder.py`, one Python process in the root namespace) moving IP",
        "  packets between the two TUN descriptors. This kernel has no `netem`; impairing whole",
        "  packets means TCP's and QUIC's congestion control react as on a real lossy link.",
        f"- The forwarder, with one `random.Random({s.seed})`, drops each packet (either",
        "  direction, ACKs included) with the cell's loss probability, holds every other",
        f"  packet for half the RTT, and holds {s.reorder * 100:g}% of them up to",
        "  max(1 ms, RTT/4) longer, so later packets overtake them. No bandwidth or queue limit.",
        "- Per cell and transport: a fresh forwarder, a server node in one namespace hosting an",
        "  `Echo` actor, and a client node in the other, so no connection carries congestion",
        "  state from one cell to the next. The client dials, checks the link with one ask,",
        f"  runs {s.warmup:g} s of untimed asks, then measures for {s.duration:g} s each:",
        f"  - **ask**: {s.askers} concurrent askers, each asking in a loop; every round trip is",
        "    a sample (p50/p99, nearest rank);",
        f"  - **bulk**: one `stream()` of {s.chunk // 1024} KiB `bytes` items, window {s.window},",
        "    consumed as fast as it comes; MiB/s of item payload. The stream's credit",
        f"    ({credit_kib} KiB in flight) caps it near {credit_kib} KiB per RTT;",
        "  - **ask during bulk** (head-of-line blocking): the same askers while one bulk stream",
        "    runs on the same link (started 0.5 s before); the stream's rate over that window",
        "    is reported too.",
        f"- An ask that times out ({s.ask_timeout:g} s) counts as failed and enters the",
        "  percentiles at its timeout. Both nodes run a lenient failure detector",
        "  (`acceptable_pause=30`, `down_after=60`): it is not under test.",
        "- `tcp://` is plain TCP (Linux defaults: CUBIC, SACK, RACK); `quic://` is trouper's",
        "  aioquic transport with TLS 1.3 and dev certificates from `trouper._certs`.",
        f"- Windows are short ({s.duration:g} s) to keep the grid within minutes, so figures",
        "  move from run to run, most in the lossy 50 ms cells: there a p99 rests on the 15 to",
        "  60 slowest of a few thousand asks, and those often wait for the same few lost",
        "  packets. Read single-run cells as an order of magnitude.",
    ]
    every, goal = repeats
    if goal > 1 or every > 1:
        lines += [
            f"- Each 5% loss cell (the goal's) runs {goal} times per transport, the other cells",
            f"  {every} time{'s' if every > 1 else ''}, transports alternating; tables show the",
            "  median of each figure over a cell's runs.",
        ]
    if quick:
        lines.append("- This was a `--quick` run: one cell, short windows.")
    return "\n".join(lines)


def _runs(values: list[float | None]) -> str:
    return " / ".join("-" if v is None else f"{v:,.0f}" for v in values) + " ms"


def _verdict_cell(cell: dict[str, Any]) -> str:
    if cell["ratio"] is None:
        return f"- {cell['rtt_ms']:g} ms RTT: not measured"
    text = (
        f"- {cell['rtt_ms']:g} ms RTT: {cell['ratio']:.2f}x (QUIC {cell['quic_ms']:,.0f} ms, "
        f"TCP {cell['tcp_ms']:,.0f} ms"
    )
    if len(cell["tcp_runs_ms"]) > 1:
        text += (
            f"; median of runs: QUIC {_runs(cell['quic_runs_ms'])}, "
            f"TCP {_runs(cell['tcp_runs_ms'])}"
        )
    return text + ")"


def _ratio_rows(results: Results, cells: list[Cell], scheme: str) -> list[list[str]]:
    rows = []
    for cell in cells:
        mine, base = results.get((cell, scheme)), results.get((cell, BASELINE))
        figures = []
        for metric in METRICS:
            r = ratio(metric.of(mine), metric.of(base))
            figures.append("-" if r is None else f"{r:.2f}")
        rows.append([f"{cell.loss * 100:g}%", f"{cell.rtt_ms:g} ms", *figures])
    return rows


def render(
    *,
    results: Results,
    cells: list[Cell],
    schemes: list[str],
    skipped: dict[str, str],
    ceilings: list[dict[str, Any]],
    verdict: dict[str, Any],
    settings: Settings,
    quick: bool,
    repeats: tuple[int, int],
    elapsed_s: float,
) -> str:
    cells_text = "\n".join(_verdict_cell(c) for c in verdict["cells"])
    parts = [
        "# Transport impairment benchmark",
        "<!-- Generated by `make bench-net` (benchmarks/net): every run rewrites this file. -->",
        f"Run on {time.strftime('%Y-%m-%d %H:%M %Z')} "
        f"({'quick mode, ' if quick else ''}{elapsed_s / 60:.1f} minutes).",
        "## Verdict",
        f"Goal: {GOAL_TEXT}. **{verdict['verdict']}**"
        + (f": {verdict['reason']}." if verdict.get("reason") else f".\n\n{cells_text}")
        + (f"\n\nCaveat: {verdict['caveat']}." if verdict.get("caveat") else ""),
        "## Machine",
        f"- {_cpu_model()}, {os.cpu_count()} cores, Linux {platform.release()}\n"
        f"- Python {sys.version.split()[0]}, trouper at commit {_commit()}\n"
        "- Both nodes, the forwarder and the kernel's network stack share these cores, so the\n"
        "  1 ms cells measure CPU as much as the network.",
        "## Method",
        _method(settings, quick, repeats),
        "## Forwarder ceiling",
        "Raw kernel TCP (blocking sockets, 1 MiB writes) from one namespace to the other "
        "through an unimpaired forwarder: the most the wire can carry here.",
        _markdown_table(
            ["added RTT", "TCP MiB/s", "packets/s (both ways)", "peak packets/s", "forwarder busy"],
            [
                [
                    f"{c['rtt_ms']:g} ms",
                    f"{c['tcp_mib_s']:,.1f}",
                    f"{c['packets_per_s']:,}",
                    f"{c['peak_pps']:,}",
                    f"{c['forwarder_busy'] * 100:.0f}%",
                ]
                for c in ceilings
            ],
        )
        if ceilings
        else "Not measured in this run.",
        "## Results",
    ]
    for scheme in schemes:
        parts.append(f"### {scheme}")
        if scheme in skipped:
            parts.append(f"Not measured: {skipped[scheme]}.")
        else:
            parts.append(_markdown_table(HEADER, table_rows(results, cells, scheme)))
            failures = [
                f"- {cell.loss * 100:g}% loss, {cell.rtt_ms:g} ms: "
                + (result.get("error") or "; ".join(result["errors"]))
                for cell in cells
                if (result := results.get((cell, scheme)))
                and (result.get("error") or result.get("errors"))
            ]
            if failures:
                parts.append("Failed runs:\n\n" + "\n".join(failures))
    for scheme in schemes:
        if scheme == BASELINE or scheme in skipped:
            continue
        parts.append(f"### {scheme} / {BASELINE}")
        parts.append(
            "Lower is better for latency ratios, higher for throughput ratios.\n\n"
            + _markdown_table(
                ["loss", "RTT", *(m.title for m in METRICS)], _ratio_rows(results, cells, scheme)
            )
        )
    return "\n\n".join(parts) + "\n"


def write(text: str, path: Path = DOC) -> Path:
    path.write_text(text)
    return path
