"""The pool_fetchval benchmark runs end to end (tiny size) and prints its JSON line."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_pool_fetchval_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--only", "pool_fetchval"]
    proc = subprocess.run(
        [*argv, "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [json.loads(text) for text in proc.stdout.splitlines() if text.strip()]
    assert line["name"] == "pool_fetchval" and line["unit"] == "calls/s"
    assert line["value"] > 0 and line["baseline_value"] > 0
    assert abs(line["ratio"] - line["value"] / line["baseline_value"]) < 0.01 * line["ratio"]
