"""Runs one `make bench` case shrunk (``--quick``), as the smoke tests do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio"}


def quick_case(only: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The JSON lines of the cases whose name contains ``only``; asserts the run
    exited 0 (its stderr is the failure message)."""
    argv = [sys.executable, "-m", "benchmarks", "--quick", "--only", only]
    argv += ["--output", str(tmp_path / "results.json")]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
