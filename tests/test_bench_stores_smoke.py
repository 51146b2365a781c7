"""The store benchmark case runs (tiny) and prints its JSON line, as `make bench` does."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio"}


def test_store_shared_append_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--only", "store_shared_append"]
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
    assert line["name"] == "store_shared_append" and set(line) >= KEYS
    assert line["value"] > 0 and line["baseline_value"] > 0
