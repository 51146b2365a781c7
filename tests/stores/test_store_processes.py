"""Two OS processes write to one store at once, twice (a restart between):
ids stay unique and keep increasing, no CAS update is lost, and each claim
has exactly one winner. Runs on every backend processes can share (all but
memory://, which lives in one process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from trouper.stores import open_store

WORKER = Path(__file__).with_name("store_append_worker.py")
COUNT = 100
CLAIMS = 30


async def run_pair(url: str, tmp: Path, round_: int) -> dict[str, dict[str, list[int]]]:
    """Start processes A and B, let them write together, return what they printed."""
    go = tmp / f"go{round_}"
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(tag: str) -> None:
        ready = tmp / f"{tag}{round_}"
        cmd = [sys.executable, str(WORKER), url, tag, str(COUNT), str(CLAIMS), str(ready), str(go)]
        results[tag] = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)

    async with trio.open_nursery() as nursery:
        for tag in "AB":
            nursery.start_soon(run, tag)
        for tag in "AB":  # the workers touch their ready file once started
            ready = trio.Path(tmp / f"{tag}{round_}")
            for _ in range(3000):
                if await ready.exists():
                    break
                await trio.sleep(0.01)
        await trio.Path(go).touch()  # both are up: let them open the store and write together
    out = {}
    for tag, proc in results.items():
        assert proc.returncode == 0, proc.stderr.decode()
        assert not proc.stderr, proc.stderr.decode()
        out[tag] = json.loads(proc.stdout)
    return out


async def test_two_processes_write_at_once_across_restarts(store_url: str, tmp_path: Path) -> None:
    if store_url.startswith("memory:"):
        pytest.skip("a memory:// store lives in one process")
    if store_url.startswith("sqlite:"):
        store_url = f"sqlite:///{tmp_path}/shared/chat.db"  # neither process finds it existing
    with trio.fail_after(60):
        for round_ in range(2):  # the second pair starts on what the first left
            out = await run_pair(store_url, tmp_path, round_)
            first = round_ * 2 * COUNT + 1
            for tag in "AB":
                ids = out[tag]["ids"]
                assert ids == sorted(set(ids)), f"{tag} saw ids out of order"
                assert len(ids) == COUNT and ids[0] >= first
            assert sorted(out["A"]["ids"] + out["B"]["ids"]) == list(
                range(first, first + 2 * COUNT)
            )
            claims_a, claims_b = set(out["A"]["claims"]), set(out["B"]["claims"])
            if round_ == 0:  # exactly one winner for every key
                assert claims_a.isdisjoint(claims_b)
                assert claims_a | claims_b == set(range(CLAIMS))
                winners = {i: "A" if i in claims_a else "B" for i in range(CLAIMS)}
            else:  # claimed keys stay claimed
                assert not claims_a and not claims_b

        async with open_store(store_url) as store:
            stored = dict(await store.read("room", limit=10 * COUNT))
            assert await store.get("counter") == str(2 * COUNT).encode()  # no lost CAS update
            for i in range(CLAIMS):
                assert await store.get(f"claim/{i}") == winners[i].encode()
    assert len(stored) == 4 * COUNT
    for tag in "AB":
        for i, record_id in enumerate(out[tag]["ids"]):
            assert stored[record_id] == f"{tag}:{i}".encode()
