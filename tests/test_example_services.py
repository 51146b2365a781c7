"""The services example (``make demo-services``) as a test: three Inventory
instances on two real node processes, a client calling them through a proxy,
and ``shop-1`` killed (SIGKILL) mid-run. Calls fail over to ``shop-2``, and
the ledger (which records each reservation as it runs) holds no order twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_shop_fails_over_with_no_duplicate_effects() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.services", "--orders", "240", "--kill-at", "80"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["duplicates"] == []
    # Before the kill both nodes served; after it, only shop-2 did.
    assert set(summary["served_by"]) == {"shop-1", "shop-2"}, summary
    assert set(summary["served_after_kill"]) == {"shop-2"}, summary
    assert summary["served_after_kill"]["shop-2"] > 0, summary
    # Every order either reserved, or failed with an error: none lost silently.
    failed = sum(summary["failed"].values())
    assert summary["reserved"] + failed == summary["orders"], summary
    # The ledger saw every reservation that was answered, and at most the
    # unanswered ones on top (ran on shop-1, answer lost with it).
    assert summary["reserved"] <= summary["ledger_entries"] <= summary["reserved"] + failed
    assert "-- kill -9 shop-1" in done.stdout
