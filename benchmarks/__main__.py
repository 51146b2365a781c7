"""``python -m benchmarks``: run every registered case against its baseline.

Stdout carries exactly one JSON object per case; progress and the summary table go to stderr.
Exit status: 0 when every case measured both sides, 1 when a side failed, 2 on bad usage,
3 with ``--check`` when a case missed its target.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from benchmarks._registry import CASES, Case
from benchmarks._runner import CaseResult, progress, run_case, table

DEFAULT_RUNS = 5
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--runs", type=int, help=f"samples per side (default {DEFAULT_RUNS})")
    parser.add_argument(
        "--only", action="append", default=[], help="run cases whose name contains this"
    )
    parser.add_argument("--quick", action="store_true", help="1 run, small sizes (smoke test)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per sample")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results file")
    parser.add_argument("--check", action="store_true", help="exit 3 if a target is missed")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = 1 if args.quick else DEFAULT_RUNS
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def select(only: list[str]) -> list[Case]:
    if not only:
        return list(CASES)
    return [case for case in CASES if any(part in case.name for part in only)]


def write_results(path: Path, args: argparse.Namespace, results: list[CaseResult]) -> None:
    document = {
        "meta": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "runs": args.runs,
            "quick": args.quick,
        },
        "cases": [result.record() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.name}: {case.unit}, vs {case.baseline_name}, target {case.target_text}")
        return 0
    cases = select(args.only)
    if not cases:
        progress(f"no case matches {args.only!r}; known: {', '.join(c.name for c in CASES)}")
        return 2
    results: list[CaseResult] = []
    for case in cases:
        result = run_case(case, runs=args.runs, quick=args.quick, timeout=args.timeout)
        results.append(result)
        print(json.dumps(result.summary()), flush=True)
    write_results(args.output, args, results)
    progress(table(results))
    progress(f"raw samples written to {args.output}")
    if any(result.failed for result in results):
        return 1
    if args.check and not all(result.summary()["meets_target"] for result in results):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
