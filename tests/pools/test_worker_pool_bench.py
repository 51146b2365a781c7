"""`make bench`'s worker_pool_spike case, shrunk: both sides measure, one JSON line."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "target"}


def test_worker_pool_spike_prints_its_json_line(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--only", "worker_pool_spike"]
    proc = subprocess.run(
        [*argv, "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert set(line) >= KEYS, line
    assert line["name"] == "worker_pool_spike" and line["unit"] == "ms p99"
    assert line["value"] > 0 and line["baseline_value"] > 0, line
    assert line["target"] == "<= 0.3"
