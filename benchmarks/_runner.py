"""Runs the cases: each sample in a fresh child process, trouper and baseline interleaved."""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks._registry import Case

REPO_ROOT = Path(__file__).resolve().parent.parent


class SampleError(RuntimeError):
    """A child process failed or printed no value."""


@dataclass(slots=True)
class Side:
    spec: str
    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples and not self.error else None


@dataclass(slots=True)
class CaseResult:
    case: Case
    size: int
    trouper: Side
    baseline: Side

    @property
    def ratio(self) -> float | None:
        value, base = self.trouper.median, self.baseline.median
        if value is None or base is None or base == 0:
            return None
        return value / base

    @property
    def failed(self) -> bool:
        return self.trouper.error is not None or self.baseline.error is not None

    def summary(self) -> dict[str, Any]:
        """The one-line stdout record for this case."""
        ratio = self.ratio
        line: dict[str, Any] = {
            "name": self.case.name,
            "value": _round(self.trouper.median),
            "unit": self.case.unit,
            "baseline": self.case.baseline_name,
            "baseline_value": _round(self.baseline.median),
            "ratio": None if ratio is None else round(ratio, 4),
            "better": self.case.better,
            "target": self.case.target_text,
            "meets_target": ratio is not None and self.case.meets(ratio),
        }
        errors = {k: s.error for k, s in (("trouper", self.trouper), ("baseline", self.baseline))}
        if any(errors.values()):
            line["error"] = {k: v for k, v in errors.items() if v}
        return line

    def record(self) -> dict[str, Any]:
        """The full record for results.json, raw samples included."""
        return {
            **self.summary(),
            "size": self.size,
            "trouper_fn": self.trouper.spec,
            "baseline_fn": self.baseline.spec,
            "samples": self.trouper.samples,
            "baseline_samples": self.baseline.samples,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


_PENDING: dict[int, bytes] = {}


def read_line(stream: IO[str] | None, timeout: float, what: str) -> str:
    """The next stdout line of a child; raise if none comes within ``timeout``
    or the child has exited.

    Reads the pipe's file descriptor directly: a text wrapper's ``readline``
    would buffer the lines after this one, where ``select`` cannot see them,
    and a second call would then wait for output that already came.
    """
    if stream is None:
        raise RuntimeError(f"{what}: no stdout pipe")
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    while b"\n" not in _PENDING.get(fd, b""):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"{what}: no output within {timeout:.0f} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            _PENDING.pop(fd, None)
            raise RuntimeError(f"{what}: exited without output")
        _PENDING[fd] = _PENDING.get(fd, b"") + chunk
    line, _, rest = _PENDING[fd].partition(b"\n")
    _PENDING[fd] = rest
    return line.decode() + "\n"


def child_env() -> dict[str, str]:
    """The environment for a child: the repo and src/ importable even without an install."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT), str(REPO_ROOT / "src")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_python(argv: list[str], timeout: float, what: str, stderr_lines: int = 1) -> str:
    """Run ``python ARGV`` to completion in the repository, with the children's
    environment; its last non-empty stdout line. ``SampleError`` naming ``what``
    on a timeout, a failure (with the last ``stderr_lines`` of its stderr) or
    no output."""
    try:
        done = subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO_ROOT,
            env=child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SampleError(f"{what}: no result within {timeout:g}s") from exc
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-stderr_lines:] or [
            f"exit status {done.returncode}"
        ]
        raise SampleError(f"{what}: " + "\n".join(tail))
    return lines[-1]


def measure(spec: str, size: int, timeout: float) -> float:
    """Run one measuring function in a fresh interpreter and return its value."""
    line = run_python(["-m", "benchmarks._child", spec, str(size)], timeout, spec)
    try:
        return float(json.loads(line)["value"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SampleError(f"{spec}: unreadable result {line!r}") from exc


def _sample(side: Side, size: int, timeout: float) -> str:
    if side.error is not None:
        return "skipped"
    try:
        value = measure(side.spec, size, timeout)
    except SampleError as exc:
        side.error = str(exc)
        return f"ERROR {exc}"
    side.samples.append(value)
    return f"{value:,.1f}"


def run_case(case: Case, *, runs: int, quick: bool, timeout: float) -> CaseResult:
    """Measure a case ``runs`` times, alternating trouper and its baseline."""
    size = case.quick_size if quick else case.size
    result = CaseResult(case, size, Side(case.trouper), Side(case.baseline))
    for run in range(1, runs + 1):
        ours = _sample(result.trouper, size, timeout)
        theirs = _sample(result.baseline, size, timeout)
        progress(
            f"[{case.name}] run {run}/{runs} n={size:,}: "
            f"trouper {ours} | baseline {theirs} {case.unit}"
        )
    return result


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def table(results: list[CaseResult]) -> str:
    """A human-readable summary, for stderr."""
    rows = [("case", "trouper", "baseline", "unit", "ratio", "target", "ok")]
    for result in results:
        line = result.summary()
        rows.append(
            (
                result.case.name,
                _fmt(line["value"]),
                _fmt(line["baseline_value"]),
                result.case.unit,
                "-" if line["ratio"] is None else f"{line['ratio']:.2f}",
                result.case.target_text,
                "error" if result.failed else ("yes" if line["meets_target"] else "no"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
