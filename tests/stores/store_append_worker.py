"""Run by test_store_processes.py in a separate OS process (not a test module).

usage: store_append_worker.py URL TAG COUNT READY_FILE GO_FILE

Waits for GO_FILE so that both processes open the store and append at the
same time, then appends COUNT records and increments a shared counter COUNT//2
times with compare_and_set; prints the ids it got as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import trio

from trouper.stores import open_store


async def work(url: str, tag: str, count: int) -> list[int]:
    ids = []
    async with open_store(url) as store:
        for i in range(count):
            ids.append(await store.append("room", f"{tag}:{i}".encode()))
            if i % 2:
                while True:  # a read-modify-write that must not lose updates
                    old = await store.get("counter")
                    new = str(int(old or b"0") + 1).encode()
                    if await store.compare_and_set("counter", old, new):
                        break
    return ids


def main() -> None:
    url, tag, count, ready, go = sys.argv[1:]
    Path(ready).touch()
    deadline = time.monotonic() + 30
    while not Path(go).exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.001)
    print(json.dumps(trio.run(work, url, tag, int(count))))


if __name__ == "__main__":
    main()
