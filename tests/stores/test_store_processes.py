"""Two OS processes share one sqlite file: ids stay unique, nothing fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import trio

from trouper.stores import open_store

WORKER = Path(__file__).with_name("store_append_worker.py")
COUNT = 200


async def test_two_processes_append_to_one_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared/chat.db"  # neither process finds it existing
    go = tmp_path / "go"
    results: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def run(tag: str) -> None:
        cmd = [sys.executable, str(WORKER), url, tag, str(COUNT), str(tmp_path / tag), str(go)]
        results[tag] = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for tag in "AB":
                nursery.start_soon(run, tag)
            for tag in "AB":  # the workers touch their ready file once started
                ready = trio.Path(tmp_path / tag)
                for _ in range(3000):
                    if await ready.exists():
                        break
                    await trio.sleep(0.01)
            await trio.Path(go).touch()  # both are up: let them open the store and write together

    ids = {}
    for tag, proc in results.items():
        assert proc.returncode == 0, proc.stderr.decode()
        assert not proc.stderr, proc.stderr.decode()
        ids[tag] = json.loads(proc.stdout)
        assert ids[tag] == sorted(set(ids[tag])), f"{tag} saw ids out of order"
        assert len(ids[tag]) == COUNT
    assert sorted(ids["A"] + ids["B"]) == list(range(1, 2 * COUNT + 1))

    with trio.fail_after(10):
        async with open_store(url) as store:
            stored = dict(await store.read("room", limit=10 * COUNT))
            assert await store.get("counter") == str(COUNT).encode()  # no lost CAS update
    for tag in "AB":
        for i, record_id in enumerate(ids[tag]):
            assert stored[record_id] == f"{tag}:{i}".encode()
