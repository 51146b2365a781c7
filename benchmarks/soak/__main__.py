"""``make soak``: ``python -m benchmarks.soak [--duration S] [--seed N] ...``.

Prints one JSON line of figures on stdout and a readable summary on stderr, and exits
1 if any check failed. ``SOAK_DURATION`` and ``SOAK_SEED`` set the defaults of
``--duration`` and ``--seed``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import trio

from ._check import check
from ._config import Config
from ._driver import load_outcome, run
from ._report import json_line, summary


def parse_args(argv: list[str]) -> Config | Path:
    defaults = Config()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    env_duration = float(os.environ.get("SOAK_DURATION", defaults.duration))
    parser.add_argument("--duration", type=float, default=env_duration, help="seconds of chaos")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED", 1)))
    parser.add_argument("--workdir", type=Path, help="for journals and logs (default: a temp dir)")
    parser.add_argument("--warmup", type=float, help="seconds before the RSS baseline")
    parser.add_argument("--rss-growth-mib", type=float, default=defaults.rss_growth_mib)
    parser.add_argument("--stall-bound", type=float, default=defaults.stall_bound)
    parser.add_argument(
        "--chaos",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(defaults.chaos_min, defaults.chaos_max),
        help="seconds between two kills",
    )
    parser.add_argument("--no-chaos", action="store_true", help="never kill or restart")
    parser.add_argument(
        "--short", action="store_true", help="the 20 s run of make test (other flags ignored)"
    )
    parser.add_argument(
        "--burst",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(defaults.workload.burst_min, defaults.workload.burst_max),
    )
    parser.add_argument("--slow-mailbox", type=int, default=defaults.workload.slow_mailbox)
    parser.add_argument("--recheck", type=Path, help="check an earlier run's workdir again")
    args = parser.parse_args(argv)
    if args.recheck:
        return Path(args.recheck)
    if args.short:
        return Config.short(seed=args.seed, workdir=args.workdir)
    chaos_min, chaos_max = args.chaos
    config = Config(
        duration=args.duration,
        seed=args.seed,
        workdir=args.workdir,
        warmup=args.warmup,
        chaos=not args.no_chaos,
        chaos_min=chaos_min,
        chaos_max=chaos_max,
        rss_growth_mib=args.rss_growth_mib,
        stall_bound=args.stall_bound,
    )
    burst_min, burst_max = args.burst
    return config.with_workload(
        burst_min=burst_min, burst_max=burst_max, slow_mailbox=args.slow_mailbox
    )


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    try:
        outcome = load_outcome(config) if isinstance(config, Path) else trio.run(run, config)
    except (ValueError, OSError) as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    verdict = check(outcome)
    print(summary(verdict), file=sys.stderr, flush=True)
    print(json_line(verdict), flush=True)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
