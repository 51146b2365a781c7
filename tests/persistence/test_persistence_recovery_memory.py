"""Recovery reads the log in batches: 100,000 events recover with a peak of
memory bounded by the batch, not by the count (Akka users ran out of memory
replaying 20M events loaded at once).

The peak is measured with tracemalloc while the recovering actor starts,
after the events are stored, and compared with a fixed bound that 100,000
events held at once would exceed several times over.
"""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from pathlib import Path

import trio
from persist_actors import Add, Counter, Get, State

import trouper
from trouper.stores import open_store

EVENTS = 100_000
NOTE = "x" * 100  # ~120 bytes per stored event: 12 MB if held all at once
#: The recovering actor may allocate at most this much at its peak.
BOUND = 2 * 1024 * 1024
LOG = "trouper.persist/big/events"


class Batched(Counter):
    recovery_batch = 500


def _bulk_sqlite(path: str, record: bytes, n: int) -> None:
    # Test setup only: one transaction instead of 100,000 (a minute of
    # fsync-bound appends), writing the rows the store's append would.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        (last,) = conn.execute("SELECT last_id FROM logs WHERE name = ?", (LOG,)).fetchone()
        rows = ((LOG, i, record) for i in range(last + 1, last + n + 1))
        conn.executemany("INSERT INTO records (log, id, data) VALUES (?, ?, ?)", rows)
        conn.execute("UPDATE logs SET last_id = ? WHERE name = ?", (last + n, LOG))
        conn.execute("COMMIT")
    finally:
        conn.close()


async def fill(url: str, record: bytes, n: int) -> None:
    """Append ``record`` ``n`` times to the big log."""
    if url.startswith("sqlite:///"):
        await trio.to_thread.run_sync(_bulk_sqlite, str(Path(url[len("sqlite:///") :])), record, n)
        return
    async with open_store(url) as store:

        async def writer(count: int) -> None:
            for _ in range(count):
                await store.append(LOG, record)

        async with trio.open_nursery() as nursery:  # pooled backends write in parallel
            for i in range(8):
                nursery.start_soon(writer, n // 8 + (i < n % 8))


async def test_100k_events_recover_in_bounded_memory(store_url: str) -> None:
    with trio.fail_after(300):
        async with trouper.open_node() as node:
            writer = await node.spawn(Batched, "big", store_url)
            await writer.ask(Add(1, NOTE))  # the first event, stored by the actor itself
            await node.stop(writer)
            async with open_store(store_url) as store:
                ((_, record),) = await store.tail(LOG, 1)
            await fill(store_url, record, EVENTS - 1)
            async with open_store(store_url) as store:
                assert [i for i, _ in await store.tail(LOG, 1)] == [EVENTS]

            gc.collect()
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                base, _ = tracemalloc.get_traced_memory()
                reader = await node.spawn(Batched, "big", store_url)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert await reader.ask(Get()) == State(EVENTS, EVENTS, EVENTS, 0, EVENTS)
            assert peak - base < BOUND, f"recovery peaked at {(peak - base) / 1e6:.1f} MB"
