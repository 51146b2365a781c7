"""`make bench-collab`, shrunk: each case runs for seconds and prints its JSON
lines in the agreed shape. Structure and sanity only, never timing."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
KEYS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "target", "meets_target"}


def bench(*argv: str) -> dict[str, dict[str, Any]]:
    command = [sys.executable, "-m", "benchmarks.collab", "--quick", *argv]
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    for line in lines:
        assert set(line) >= KEYS, line
    return {line["name"]: line for line in lines}


def test_fanout_measures_both_servers_with_the_same_editors() -> None:
    lines = bench("--cases", "fanout", "--editors", "6", "--duration", "1.5")
    p99 = lines["collab_fanout_p99"]
    for kind in ("trouper", "baseline"):
        # 6 editors x 2 updates/s x 1.5 s, each update to the 5 other editors
        assert p99[f"{kind}_expected"] == 18 * 5, p99
        assert p99[f"{kind}_deliveries"] == p99[f"{kind}_expected"], p99
        assert (p99[f"{kind}_lost"], p99[f"{kind}_duplicated"]) == (0, 0), p99
        assert p99[f"{kind}_converged"] is True, p99
        assert 0 < p99[f"{kind}_p50_ms"] <= p99[f"{kind}_max_ms"], p99
    assert p99["value"] > 0 and p99["baseline_value"] > 0
    assert abs(p99["ratio"] - p99["value"] / p99["baseline_value"]) < 0.01 * p99["ratio"]
    # pycrdt-websocket re-encodes each update from its own Doc's transaction: for
    # these appends yrs writes the very bytes the sender sent.
    assert p99["baseline_identical_bytes"] == 1.0
    assert lines["collab_fanout_server_us_per_delivery"]["value"] > 0


def test_memory_per_open_document_is_reported() -> None:
    lines = bench("--cases", "memory", "--documents", "30", "--doc-kb", "4")
    memory = lines["collab_memory_per_open_document"]
    assert memory["documents"] == 30 and memory["doc_kb"] == 4
    # each document's state holds its 4 KB of text
    assert memory["state_bytes_per_document"] >= 4 * 1024
    assert memory["value"] is not None and memory["python_heap_per_document"] > 0


def test_recovery_replays_the_persisted_updates_with_and_without_snapshots() -> None:
    lines = bench("--cases", "recovery", "--updates", "600", "--backends", "sqlite,postgres")
    for backend in ("sqlite", "postgres"):
        for snapshots in ("default", "off"):
            recovery = lines[f"collab_recovery_{backend}_snapshots_{snapshots}"]
            assert recovery["value"] > 0, recovery
            # every acknowledged update is in the store: the reopened document's
            # version counts all of them (the child also compares the text)
            assert recovery["version"] >= 600, recovery
            persist = lines[f"collab_persist_{backend}_snapshots_{snapshots}"]
            assert persist["value"] > 0 and persist["updates"] == 600
