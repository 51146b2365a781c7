"""`make bench` prints one JSON object per case, in the agreed shape."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio"}


def test_bench_prints_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "local_", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {line["name"] for line in lines} >= {"local_tell", "local_ask"}
    for line in lines:
        assert set(line) >= KEYS, line
        assert line["value"] > 0 and line["baseline_value"] > 0
        assert abs(line["ratio"] - line["value"] / line["baseline_value"]) < 0.01 * line["ratio"]
    assert json.loads(out.read_text())
