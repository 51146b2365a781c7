"""Run by test_store_processes.py in a separate OS process (not a test module).

usage: store_append_worker.py URL TAG COUNT CLAIMS READY_FILE GO_FILE

Waits for GO_FILE so that both processes open the store and write at the
same time, then appends COUNT records, increments a shared counter COUNT//2
times with compare_and_set, and tries to claim keys ``claim/0`` to
``claim/CLAIMS-1`` (compare_and_set from absent), interleaved; prints
``{"ids": [...], "claims": [...]}`` (the ids it got, the claims it won) as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trio

from trouper.stores import open_store


async def work(url: str, tag: str, count: int, claims: int) -> dict[str, list[int]]:
    ids = []
    won = []
    async with open_store(url) as store:
        for i in range(count):
            ids.append(await store.append("room", f"{tag}:{i}".encode()))
            if i < claims and await store.compare_and_set(f"claim/{i}", None, tag.encode()):
                won.append(i)
            if i % 2:
                while True:  # a read-modify-write that must not lose updates
                    old = await store.get("counter")
                    new = str(int(old or b"0") + 1).encode()
                    if await store.compare_and_set("counter", old, new):
                        break
    return {"ids": ids, "claims": won}


def main() -> None:
    url, tag, count, claims, ready, go = sys.argv[1:]
    Path(ready).touch()
    deadline = time.monotonic() + 30
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.001)
    print(json.dumps(trio.run(work, url, tag, int(count), int(claims))))


if __name__ == "__main__":
    main()
