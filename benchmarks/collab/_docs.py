"""The state-sync core measured in-process: memory per open document, recovery time.

``python -m benchmarks.collab._docs memory --documents N --doc-kb K`` stores N
documents of K KB of text (one node), then, in a fresh process of its own
(``open``), opens them all on one node with passivation off and prints the
RSS growth per document (and, in a third process, tracemalloc's view).

``python -m benchmarks.collab._docs recovery --backend sqlite|postgres
--updates N --snapshots default|off`` persists N updates into one document
through ``ApplyUpdate`` (acknowledged only once stored) from ``WRITERS``
concurrent writers, closes the node, opens a new node on the same store and
times the document's reopening until its first ``SyncReply``.

Each prints one JSON line. Everything goes through the state-sync core's
public interface: ``spawn_state_sync`` and the directory's messages.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pycrdt
import trio
from examples.collab.sync import spawn_state_sync
from examples.collab.sync._messages import (
    DIRECTORY_NAME,
    ApplyUpdate,
    OpenDocument,
    SyncReply,
    SyncRequest,
)

import trouper
from benchmarks._runner import REPO_ROOT, child_env, read_line
from benchmarks.chat._limits import rss_bytes
from benchmarks.collab._servers import run_child

#: Concurrent writers in the recovery case: each sends its own edits in order,
#: one ``ApplyUpdate`` at a time (as one client connection does).
WRITERS = 32
#: Documents one node may host here (the example's default is 1,000; the
#: memory case opens one more to warm up). Passivation is off: all stay open.
MAX_DOCUMENTS = 100_000
#: The longest a child may take to persist its updates (seconds).
PERSIST_LIMIT = 1800.0
#: Documents opened at once while populating and opening.
OPEN_CONCURRENCY = 32


@asynccontextmanager
async def state_sync(store: str, snapshots: str = "default") -> AsyncIterator[trouper.ActorRef]:
    """A node running the state-sync core on ``store``; yields its directory."""
    options: dict[str, Any] = {"store_url": store, "passivate_after": None}
    options["max_documents"] = MAX_DOCUMENTS
    if snapshots == "off":
        options["snapshot_every"] = None  # PersistentActor: no automatic snapshots
    async with trouper.open_node(store=store) as node:
        await spawn_state_sync(node, **options)
        yield await node.lookup(DIRECTORY_NAME, timeout=10)


async def open_doc(directory: trouper.ActorRef, doc: str) -> trouper.ActorRef:
    ref: trouper.ActorRef = await directory.ask(OpenDocument(doc))
    return ref


def text_update(chars: int, seed: int) -> bytes:
    """One update inserting ``chars`` characters of text (10 KB = one paragraph's worth x 20)."""
    doc = pycrdt.Doc()
    text = doc.get("content", type=pycrdt.Text)
    words = (f"w{seed}-{n} " for n in range(chars))
    body = "".join(words)[:chars]
    text += body
    return doc.get_update()


# -- memory ---------------------------------------------------------------------------------


async def populate(store: str, documents: int, chars: int) -> None:
    async with state_sync(store) as directory:
        limiter = trio.CapacityLimiter(OPEN_CONCURRENCY)

        async def one(number: int) -> None:
            async with limiter:
                ref = await open_doc(directory, f"mem-{number}")
                await ref.ask(ApplyUpdate(text_update(chars, number), origin="bench"))

        async with trio.open_nursery() as nursery:
            for number in range(documents):
                nursery.start_soon(one, number)


async def open_all(store: str, documents: int, chars: int, traced: bool) -> dict[str, Any]:
    async with state_sync(store) as directory:
        refs = [await open_doc(directory, "mem-warm")]  # one-time costs: code paths, caches
        await refs[0].ask(SyncRequest(b"\x00"))
        gc.collect()
        rss0 = rss_bytes(os.getpid())
        if traced:
            tracemalloc.start()
        started = time.monotonic()
        limiter = trio.CapacityLimiter(OPEN_CONCURRENCY)
        sizes: list[int] = []

        async def one(number: int) -> None:
            async with limiter:
                ref = await open_doc(directory, f"mem-{number}")
                reply: SyncReply = await ref.ask(SyncRequest(b"\x00"))
                sizes.append(len(reply.update))
                refs.append(ref)

        async with trio.open_nursery() as nursery:
            for number in range(documents):
                nursery.start_soon(one, number)
        secs = time.monotonic() - started
        gc.collect()
        result: dict[str, Any] = {"documents": len(sizes), "open_secs": round(secs, 2)}
        if traced:
            current, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result["python_heap_per_document"] = round(current / documents)
        else:
            rss1 = rss_bytes(os.getpid())
            result["rss_per_document"] = round((rss1 - rss0) / documents)
            result["rss_before"], result["rss_after"] = rss0, rss1
        short = sum(size < chars for size in sizes)
        if short:
            raise RuntimeError(f"{short} documents came back smaller than their {chars} chars")
        result["state_bytes_per_document"] = round(sum(sizes) / max(1, len(sizes)))
        return result


def _child(*argv: str) -> dict[str, Any]:
    return run_child(["-m", "benchmarks.collab._docs", *argv], 900, f"_docs {argv[0]}")


def memory(args: argparse.Namespace) -> dict[str, Any]:
    chars = args.doc_kb * 1024
    with tempfile.TemporaryDirectory(prefix="bench-collab-mem-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'docs.db'}"
        started = time.monotonic()
        trio.run(populate, store, args.documents, chars)
        populated = round(time.monotonic() - started, 2)
        common = ("open", "--store", store, "--documents", str(args.documents))
        common += ("--doc-kb", str(args.doc_kb))
        result = _child(*common)
        traced = _child(*common, "--traced")
    result["python_heap_per_document"] = traced["python_heap_per_document"]
    result.update(populate_secs=populated, doc_kb=args.doc_kb, passivation="off")
    return result


# -- recovery -------------------------------------------------------------------------------


def writer_updates(writers: int, total: int) -> list[list[bytes]]:
    """``total`` updates from ``writers`` editors, each appending tokens to its own doc."""
    streams: list[list[bytes]] = []
    for writer in range(writers):
        doc = pycrdt.Doc()
        text = doc.get("content", type=pycrdt.Text)
        captured: list[bytes] = []
        doc.observe(lambda event, out=captured: out.append(event.update))
        for seq in range(writer, total, writers):
            text.insert(len(text), f"<{writer}:{seq}>")
        streams.append(captured)
    return streams


async def persist(store: str, updates: int, snapshots: str) -> None:
    """Persist ``updates`` updates, print the figures, then wait to be killed."""
    streams = writer_updates(WRITERS, updates)
    async with state_sync(store, snapshots) as directory:
        ref = await open_doc(directory, "recovery")

        async def write(number: int, stream: list[bytes]) -> None:
            for update in stream:
                await ref.ask(ApplyUpdate(update, origin=f"w{number}"))

        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            for number, stream in enumerate(streams):
                nursery.start_soon(write, number, stream)
        secs = time.monotonic() - started
        line = {"persist_secs": round(secs, 2), "persist_per_sec": round(updates / secs, 1)}
        print(json.dumps(line), flush=True)
        await trio.sleep_forever()  # every update is acknowledged: kill -9 comes now


async def recover(store: str, snapshots: str) -> tuple[float, SyncReply]:
    """A new node opens the document of the killed one: the time to its first SyncReply."""
    async with state_sync(store, snapshots) as directory:
        started = time.monotonic()
        ref = await open_doc(directory, "recovery")
        reply: SyncReply = await ref.ask(SyncRequest(b"\x00"))
        return time.monotonic() - started, reply


def persist_kill_recover(store: str, updates: int, snapshots: str) -> dict[str, Any]:
    """Persist in a child process, ``kill -9`` it once all is acknowledged (no
    final snapshot on the way out: a crash), then recover here."""
    argv = [sys.executable, "-m", "benchmarks.collab._docs", "persist", "--store", store]
    argv += ["--updates", str(updates), "--snapshots", snapshots]
    child = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=child_env()
    )
    try:
        persisted = json.loads(read_line(child.stdout, PERSIST_LIMIT, "persisting child"))
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    secs, reply = trio.run(recover, store, snapshots)
    doc = pycrdt.Doc()
    doc.apply_update(reply.update)
    got = len(str(doc.get("content", type=pycrdt.Text)))
    chars = sum(len(f"<{n % WRITERS}:{n}>") for n in range(updates))
    if got != chars:
        raise RuntimeError(f"recovered {got} chars, persisted {chars}")
    return {
        "updates": updates,
        "in_flight": WRITERS,
        **persisted,
        "recovery_secs": round(secs, 4),
        "version": reply.version,
        "state_bytes": len(reply.update),
        "snapshots": "every 500 events" if snapshots == "default" else "off",
        "stopped_by": "kill -9 after the last acknowledgement",
    }


def recovery(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-collab-rec-") as tmp:
            store = f"sqlite:///{Path(tmp) / 'docs.db'}"
            result = persist_kill_recover(store, args.updates, args.snapshots)
            return {"backend": "sqlite", **result}
    from benchmarks._postgres_server import PostgresServer, postgres_bin

    try:
        postgres_bin()
    except RuntimeError as exc:
        return {"skipped": str(exc)}
    with PostgresServer() as server:
        result = persist_kill_recover(server.create_database(), args.updates, args.snapshots)
    return {"backend": "postgres (fsync=off)", **result}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collab._docs")
    parser.add_argument("what", choices=("memory", "open", "recovery", "persist"))
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--doc-kb", type=int, default=10)
    parser.add_argument("--store", default="")
    parser.add_argument("--traced", action="store_true")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--snapshots", choices=("default", "off"), default="default")
    args = parser.parse_args()
    if args.what == "memory":
        result = memory(args)
    elif args.what == "open":
        chars = args.doc_kb * 1024
        result = trio.run(open_all, args.store, args.documents, chars, args.traced)
    elif args.what == "persist":
        trio.run(persist, args.store, args.updates, args.snapshots)
        return
    else:
        result = recovery(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
