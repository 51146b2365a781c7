"""How many calls one node's session service answers per second.

    python -m examples.collab.sessions.bench [STORE_URL] [--callers 20] [--calls 2000]

STORE_URL defaults to ``memory://``; use ``sqlite:///PATH`` or
``redis://127.0.0.1:6379/0?prefix=bench:`` (a prefix of its own: the run
leaves its sessions behind until their TTL). Prints one JSON line per case.
A service is an actor, so one node's calls are handled one at a time: these
figures are a node's ceiling, whatever the number of callers.
"""

import argparse
import json
import time

import trio

import trouper

from ._service import SessionService, spawn_session_service

#: Sessions the heartbeats go round (each heartbeat is one store write).
SESSIONS = 50


async def measure(url: str, callers: int, calls: int) -> None:
    async with trouper.open_node() as node:
        await spawn_session_service(node, store_url=url)
        sessions = node.proxy(SessionService, timeout=30)
        records = [await sessions.create(f"u{i}", f"c{i}", ttl=300.0) for i in range(SESSIONS)]

        async def caller(k: int) -> None:
            for j in range(calls // callers):
                await sessions.heartbeat(records[(k + j) % SESSIONS].id)

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(callers):
                nursery.start_soon(caller, k)
        report("heartbeat", url, callers, calls // callers * callers, time.perf_counter() - start)

        start = time.perf_counter()
        for i in range(calls // 10):
            await sessions.create(f"bench-{i}", f"bench-c{i}", ttl=300.0)
        report("create", url, 1, calls // 10, time.perf_counter() - start)


def report(case: str, url: str, callers: int, done: int, took: float) -> None:
    line = {
        "case": case,
        "store": url.split(":")[0],
        "callers": callers,
        "calls": done,
        "per_second": round(done / took),
        "ms_each": round(took / done * 1e3, 3),
    }
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="memory://")
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    trio.run(measure, args.url, args.callers, args.calls)


if __name__ == "__main__":
    main()
