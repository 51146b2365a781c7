"""``python -m benchmarks.collab``: the collaborative editor's benchmark (issue 15).

Cases (``--cases``, comma-separated; all by default):

- ``fanout``: ``--editors`` (50) editors on one document, each sending
  ``--rate`` (2) Yjs updates a second, against the collab example
  (``python -m examples.collab``, sqlite store, persistence on) and against
  pycrdt-websocket's own server on hypercorn-trio, in the same run, with the
  same load generator (``_editors``, its own process). p50/p99/max of the
  sender-to-receiver latency, lost and duplicated deliveries, server CPU per
  delivery. Target: trouper's p99 <= 1.0x the baseline's, and < 100 ms.
  With ``--runs N`` the sides alternate N times and the median-p99 run counts.
- ``memory``: ``--documents`` (1,000) documents of ``--doc-kb`` (10) KB of
  text opened and kept open on one node process: RSS growth per document,
  and tracemalloc's view of the Python heap. Reported, no target.
- ``recovery``: ``--updates`` (100,000) updates persisted into one document
  (sqlite, and PostgreSQL when its binaries are installed), the document
  stopped and reopened on a fresh node: time to its first SyncReply, with
  the default snapshots and with snapshots off; and the persist throughput.
  Reported, no target.

Stdout: one JSON object per figure (name, value, unit, baseline,
baseline_value, ratio, target, meets_target, details); progress on stderr.
Exit status 1 when a measurement failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._servers import Server, baseline_server, progress, run_child, trouper_server

P99_LIMIT_MS = 100.0
BASELINE = "pycrdt-websocket ASGIServer on hypercorn-trio"
#: The editors join one document: the trouper example's URL names it in the query,
#: pycrdt-websocket's in the path (its room).
DOC = "bench"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collab", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--cases", default="fanout,memory,recovery")
    parser.add_argument("--editors", type=int, help="fan-out editors (50)")
    parser.add_argument("--rate", type=float, default=2.0, help="updates/s per editor")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (5)")
    parser.add_argument("--duration", type=float, help="measured seconds (20)")
    parser.add_argument("--documents", type=int, help="open documents for memory (1000)")
    parser.add_argument("--doc-kb", type=int, default=10, help="KB of text per document")
    parser.add_argument("--updates", type=int, help="updates persisted for recovery (100000)")
    parser.add_argument("--backends", default="sqlite,postgres", help="recovery stores")
    parser.add_argument("--servers", default="trouper,baseline", help="fan-out sides")
    parser.add_argument("--runs", type=int, default=1, help="fan-out runs (median p99 kept)")
    parser.add_argument("--quick", action="store_true", help="shrunk sizes (smoke test)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.editors = args.editors or (10 if quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 5.0)
    args.duration = args.duration or (2.0 if quick else 20.0)
    args.documents = args.documents or (40 if quick else 1000)
    args.updates = args.updates or (2000 if quick else 100_000)
    return args


# -- fan-out -------------------------------------------------------------------------------


def _fanout_side(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-collab-") as tmp:
        server: Server | None = None
        try:
            if kind == "trouper":
                server = trouper_server(Path(tmp))
                url = server.ws(f"/ws?doc={DOC}&user={{user}}")
            else:
                server = baseline_server()
                url = server.ws(f"/{DOC}")
            progress(f"fanout: {kind} serving at {server.http}, {args.editors} editors")
            argv = ["-m", "benchmarks.collab._editors", "--url", url]
            argv += ["--editors", str(args.editors), "--rate", str(args.rate)]
            argv += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
            argv += ["--server-pid", str(server.pid)]
            limit = args.warmup + args.duration + 120
            result = run_child(argv, limit, f"{kind} editors")
            result["server_rss"] = server.rss()
            result["loadavg_1m"] = round(os.getloadavg()[0], 2)  # others' load on the machine
            progress(f"fanout: {kind}: {json.dumps(result)}")
            return result
        except (RuntimeError, OSError, ValueError) as exc:
            tail = server.log_tail() if server is not None else ""
            progress(f"fanout: {kind} failed: {exc}\n{tail}")
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            if server is not None:
                server.close()


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median p99 (the lower one of an even count), so that
    its other figures are those of one real run; an error when all failed."""
    good = sorted((r for r in runs if r.get("p99_ms") is not None), key=lambda r: r["p99_ms"])
    return good[(len(good) - 1) // 2] if good else runs[0]


def fanout(args: argparse.Namespace) -> list[dict[str, Any]]:
    kinds = args.servers.split(",")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(args.runs):  # the two servers alternate: drifting load hits both
        for kind in kinds:
            runs[kind].append(_fanout_side(kind, args))
    sides = {kind: _median_run(results) for kind, results in runs.items()}
    ours, theirs = sides.get("trouper", {}), sides.get("baseline", {})
    p99 = _record("collab_fanout_p99", "ms", ours.get("p99_ms"), theirs.get("p99_ms"))
    p99["target"] = f"<= 1.0x and < {P99_LIMIT_MS:g} ms"
    ratio = p99["ratio"]
    p99["meets_target"] = bool(
        ratio is not None
        and ratio <= 1.0
        and p99["value"] < P99_LIMIT_MS
        and ours.get("lost") == 0
        and ours.get("duplicated") == 0
    )
    cpu = _record(
        "collab_fanout_server_us_per_delivery",
        "us",
        ours.get("server_us_per_delivery"),
        theirs.get("server_us_per_delivery"),
    )
    fields = ("p50_ms", "max_ms", "lost", "duplicated", "deliveries", "expected", "held")
    fields += ("identical_bytes", "server_cores", "generator_us_per_delivery", "converged")
    fields += ("server_rss", "loadavg_1m")
    for kind, side in sides.items():
        for field in (*fields, "error"):
            if field in side:
                p99[f"{kind}_{field}"] = side[field]
    for kind, results in runs.items():
        p99[f"{kind}_p99_runs"] = [r.get("p99_ms") for r in results]
    p99.update(editors=args.editors, rate_per_editor=args.rate, seconds=args.duration)
    p99["trouper_persistence"] = "sqlite, every update stored before its ack"
    p99["baseline_persistence"] = "none"
    return [p99, cpu]


def _record(name: str, unit: str, value: Any, baseline: Any) -> dict[str, Any]:
    ratio = round(value / baseline, 4) if value is not None and baseline else None
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": BASELINE,
        "baseline_value": baseline,
        "ratio": ratio,
        "better": "lower",
        "target": "report",
        "meets_target": value is not None,
    }


def _report(name: str, unit: str, value: Any, **details: Any) -> dict[str, Any]:
    """A figure with no baseline and no target: it is reported."""
    record = {"name": name, "value": value, "unit": unit, "baseline": None}
    record.update(baseline_value=None, ratio=None, better="lower", target="report")
    record["meets_target"] = value is not None
    record.update(details)
    return record


# -- memory and recovery (child processes running the state-sync core in-process) ---------


def memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    argv = ["-m", "benchmarks.collab._docs", "memory", "--documents", str(args.documents)]
    argv += ["--doc-kb", str(args.doc_kb)]
    try:
        result = run_child(argv, 900, "memory")
    except RuntimeError as exc:
        progress(f"memory failed: {exc}")
        return [_report("collab_memory_per_open_document", "bytes", None, error=str(exc))]
    progress(f"memory: {json.dumps(result)}")
    per_doc = result.pop("rss_per_document")
    return [_report("collab_memory_per_open_document", "bytes", per_doc, **result)]


def recovery(args: argparse.Namespace) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        for snapshots in ("default", "off"):
            argv = ["-m", "benchmarks.collab._docs", "recovery", "--backend", backend]
            argv += ["--updates", str(args.updates), "--snapshots", snapshots]
            name = f"collab_recovery_{backend}_snapshots_{snapshots}"
            try:
                result = run_child(argv, 1800, name)
            except RuntimeError as exc:
                progress(f"{name} failed: {exc}")
                records.append(_report(name, "s", None, error=str(exc)))
                continue
            progress(f"{name}: {json.dumps(result)}")
            if result.get("skipped"):
                records.append(_report(name, "s", None, skipped=result["skipped"]))
                records[-1]["meets_target"] = True
                continue
            records.append(_report(name, "s", result.pop("recovery_secs"), **result))
            throughput = result["persist_per_sec"]
            records.append(
                _report(
                    f"collab_persist_{backend}_snapshots_{snapshots}",
                    "updates/s",
                    throughput,
                    updates=result["updates"],
                    in_flight=result["in_flight"],
                )
            )
            records[-1]["better"] = "higher"
    return records


CASES = {"fanout": fanout, "memory": memory, "recovery": recovery}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: children are killed
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        progress(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
        return 2
    failed = False
    for case in args.cases.split(","):
        for record in CASES[case](args):
            failed = failed or (record["value"] is None and "skipped" not in record)
            print(json.dumps(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
