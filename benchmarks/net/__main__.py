"""``python -m benchmarks.net`` (``make bench-net``): trouper transports on an impaired link.

Two nodes in two network namespaces, joined only by a userspace packet forwarder that
adds seeded loss, delay and reordering (see ``_forwarder``). For each cell of the grid
(loss x RTT) and each transport: ask p50/p99 with 64 concurrent askers, bulk ``stream()``
throughput, and ask p50/p99 while a bulk stream shares the link.

Stdout: one JSON object per transport, cell and metric (TCP is the baseline of the others),
then the goal's verdict. Progress and tables go to stderr; docs/transport-impairment.md is
rewritten. Needs root: without it (or without ``ip`` or /dev/net/tun) it says why and exits 0.
Exit status 1 when a run failed, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.net import _ceiling, _doc, _grid, _link, _report
from benchmarks.net._procs import progress

GRID_LOSS = (0.0, 0.01, 0.05, 0.10)
GRID_RTT_MS = (1.0, 50.0)
QUICK_LOSS = (0.05,)
QUICK_RTT_MS = (50.0,)


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.net", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_NET_QUICK", "") not in ("", "0"),
        help="one cell (5%% loss, 50 ms), 2 s windows; also BENCH_NET_QUICK=1",
    )
    parser.add_argument("--schemes", default="tcp,quic", help="transports; tcp is the baseline")
    parser.add_argument("--loss", type=_floats, help="loss percentages, e.g. 0,1,5,10")
    parser.add_argument("--rtt", type=_floats, help="RTTs in ms, e.g. 1,50")
    parser.add_argument("--duration", type=float, help="seconds per measurement (5; quick 2)")
    parser.add_argument("--askers", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=32 * 1024, help="bytes per stream item")
    parser.add_argument("--window", type=int, default=16, help="stream credit, in items")
    parser.add_argument("--ask-timeout", type=float, default=10.0)
    parser.add_argument("--reorder", type=float, default=0.005, help="share of packets delayed")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeats", type=int, default=1, help="runs per cell (median)")
    parser.add_argument(
        "--goal-repeats", type=int, help="runs per 5%%-loss cell, the goal's (3; quick 1)"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the forwarder ceiling")
    parser.add_argument("--doc", type=Path, default=_doc.DOC, help="markdown output")
    args = parser.parse_args(argv)
    args.schemes = [s.strip().lower() for s in args.schemes.split(",") if s.strip()]
    unknown = [s for s in args.schemes if s not in _grid.PORTS]
    if unknown or _report.BASELINE not in args.schemes:
        parser.error(f"--schemes: known {sorted(_grid.PORTS)}, and tcp must be one of them")
    args.schemes.sort(key=lambda s: s != _report.BASELINE)
    loss = [p / 100 for p in args.loss] if args.loss else (QUICK_LOSS if args.quick else GRID_LOSS)
    rtt = args.rtt or (QUICK_RTT_MS if args.quick else GRID_RTT_MS)
    args.cells = [_grid.Cell(loss=p, rtt_ms=r) for r in rtt for p in loss]
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.goal_repeats = args.goal_repeats or (1 if args.quick else max(3, args.repeats))
    if min(args.repeats, args.goal_repeats) < 1:
        parser.error("--repeats and --goal-repeats must be at least 1")
    return args


def unavailable_schemes(schemes: list[str]) -> dict[str, str]:
    """Transports this installation cannot run, with the reason (quic:// is optional)."""
    import trouper.transports
    from trouper import ConfigurationError

    skipped = {}
    for scheme in schemes:
        try:
            trouper.transports.get_transport(scheme)
        except ConfigurationError as exc:
            skipped[scheme] = str(exc)
    return skipped


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _make_certs(directory: str) -> Path:
    from trouper._certs import make_dev_certs

    hosts = (_link.ADDRESS_A, _link.ADDRESS_B, "127.0.0.1")
    return make_dev_certs(Path(directory), names=("a", "b"), hosts=hosts)


def measure(
    args: argparse.Namespace, skipped: dict[str, str]
) -> tuple[_report.Results, list[dict[str, Any]], _grid.Settings]:
    """Build the link, measure the forwarder's ceiling, then every cell and transport."""
    settings = _grid.Settings(
        duration=args.duration,
        warmup=0.5 if args.quick else 1.0,
        askers=args.askers,
        chunk=args.chunk,
        window=args.window,
        ask_timeout=args.ask_timeout,
        reorder=args.reorder,
        seed=args.seed,
    )
    results: _report.Results = {}
    ceilings: list[dict[str, Any]] = []
    runnable = [s for s in args.schemes if s not in skipped]
    with tempfile.TemporaryDirectory(prefix="bench-net-") as tmp, _link.open_link() as link:
        certs = _make_certs(tmp)
        progress(f"namespaces {link.ns_a} and {link.ns_b} are up")
        if not args.no_ceiling:
            for rtt_ms in (1.0,) if args.quick else (0.0, 1.0):
                ceiling = _ceiling.measure(link, 2.0, rtt_ms)
                progress(f"forwarder ceiling: {json.dumps(ceiling)}")
                ceilings.append(ceiling)
        for cell in args.cells:
            repeats = args.goal_repeats if cell.loss == _report.GOAL_LOSS else args.repeats
            runs: dict[str, list[dict[str, Any]]] = {scheme: [] for scheme in runnable}
            # Transports alternate within a cell, so a slow moment of the machine is shared.
            for repeat in range(1, repeats + 1):
                for scheme in runnable:
                    where = f"{cell.loss * 100:g}% loss, {cell.rtt_ms:g} ms RTT"
                    progress(f"{scheme} at {where}, run {repeat}/{repeats}")
                    result = _grid.run(link, cell, scheme, certs, settings)
                    progress(f"{scheme} {cell.label}: {json.dumps(result)}")
                    runs[scheme].append(result)
            for scheme, done in runs.items():
                results[(cell, scheme)] = _grid.combine(done)
    return results, ceilings, settings


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    reason = _link.unavailable_reason()
    if reason is not None:
        progress(f"skipped: {reason}")
        print(json.dumps({"name": "net", "skipped": reason}), flush=True)
        return 0
    skipped = unavailable_schemes(args.schemes)
    for scheme, why in skipped.items():
        progress(f"{scheme}:// skipped: {why}")
        print(json.dumps({"name": f"net_{scheme}", "skipped": why}), flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    for name in _link.remove_stale_namespaces():
        progress(f"removed namespace {name}, left by a run that was killed")
    started = time.monotonic()
    try:
        results, ceilings, settings = measure(args, skipped)
    except KeyboardInterrupt:
        progress("interrupted; namespaces and processes cleaned up")
        return 130
    except (TimeoutError, RuntimeError) as exc:
        progress(f"the link between the namespaces does not work: {exc}")
        return 1
    except _link.LinkUnavailable as exc:
        progress(f"skipped: cannot build the link: {exc}")
        print(json.dumps({"name": "net", "skipped": str(exc)}), flush=True)
        return 0
    compared = [s for s in args.schemes if s != _report.BASELINE]
    records = (
        _report.lines(results, args.cells, compared, skipped)
        if compared
        else _report.baseline_only_lines(results, args.cells)
    )
    for record in records:
        print(json.dumps(record), flush=True)
    verdict = _report.verdict(results, args.cells, skipped)
    print(json.dumps(verdict), flush=True)
    for scheme in args.schemes:
        if scheme not in skipped:
            progress(_report.text_table(results, args.cells, scheme))
    progress(f"goal: {_report.GOAL_TEXT}: {verdict['verdict']}")
    if verdict.get("reason"):
        progress(f"not measured: {verdict['reason']}")
    if verdict.get("caveat"):
        progress(f"caveat: {verdict['caveat']}")
    text = _doc.render(
        results=results,
        cells=args.cells,
        schemes=args.schemes,
        skipped=skipped,
        ceilings=ceilings,
        verdict=verdict,
        settings=settings,
        quick=args.quick,
        repeats=(args.repeats, args.goal_repeats),
        elapsed_s=time.monotonic() - started,
    )
    progress(f"wrote {_doc.write(text, args.doc)}")
    return 1 if any(r.get("error") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
