"""store_shared_append: appends through the node's shared store against the store used directly.

Both sides append ``n`` records to one SQLite file from ``WRITERS`` concurrent writers: on the
trouper side each writer is an actor with the handle ``ctx.store()`` gave it (one store for the
node, held by ``/system/stores``); the baseline's writers are plain tasks sharing a store opened
with ``open_store``. The ratio is what sharing costs per call: the handle's indirection and the
actor's ask, on top of the same sqlite statement.
"""

from __future__ import annotations

import tempfile

import trio

from benchmarks.cases._timing import clock, rate

DEADLINE = 300.0
WRITERS = 16


def trouper_shared_append(n: int) -> float:
    import trouper

    class Writer(trouper.Actor):
        async def on_start(self) -> None:
            self.store = await self.ctx.store()

        @trouper.handler
        async def write(self, count: int) -> None:
            for i in range(count):
                await self.store.append("log", b"record %d" % i)

    async def main(path: str) -> float:
        with trio.fail_after(DEADLINE):
            async with trouper.open_node(store=f"sqlite:///{path}/shared.db") as node:
                writers = [await node.spawn(Writer) for _ in range(WRITERS)]
                await writers[0].ask(1)  # warm up: the file and its schema exist
                start = clock()
                async with trio.open_nursery() as nursery:
                    for writer in writers:
                        nursery.start_soon(writer.ask, n // WRITERS, None)
                elapsed = clock() - start
        return rate(n // WRITERS * WRITERS, elapsed)

    with tempfile.TemporaryDirectory() as path:
        return trio.run(main, path)


def direct_append(n: int) -> float:
    from trouper.stores import Store, open_store

    async def write(store: Store, count: int) -> None:
        for i in range(count):
            await store.append("log", b"record %d" % i)

    async def main(path: str) -> float:
        with trio.fail_after(DEADLINE):
            async with open_store(f"sqlite:///{path}/direct.db") as store:
                await write(store, 1)
                start = clock()
                async with trio.open_nursery() as nursery:
                    for _ in range(WRITERS):
                        nursery.start_soon(write, store, n // WRITERS)
                elapsed = clock() - start
        return rate(n // WRITERS * WRITERS, elapsed)

    with tempfile.TemporaryDirectory() as path:
        return trio.run(main, path)
