"""The persist_<backend> benchmark runs and prints its JSON line (a tiny run:
tests/test_bench_smoke.py's style; the figures come from ``make bench``)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "target"}


def test_persist_bench_prints_its_json_line(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--only", "persist_"]
    proc = subprocess.run(
        [*argv, "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {line["name"] for line in lines} >= {"persist_sqlite"}
    for line in lines:
        assert set(line) >= KEYS, line
        assert line["unit"] == "events/s" and line["target"] == ">= 0.7"
        assert line["value"] > 0 and line["baseline_value"] > 0
