"""kill -9 of a real node process in the middle of persisting, then recovery
in another process: every acknowledged event is there.

The store must be shared by processes (``process_store_url``: sqlite,
PostgreSQL and Redis, each a real server). The child node imports
``persist_actors`` through ``PYTHONPATH``, as this module does.
"""

from __future__ import annotations

import os

import pytest
import trio
from persist_actors import ALLOW, Add, Counter, Get, State

import trouper

COOKIE = b"persistence-processes-cookie"
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def child_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (HERE, existing) if p))


async def test_kill_9_while_persisting_then_recovery_in_another_process(
    process_store_url: str,
) -> None:
    with trio.fail_after(60):
        async with trouper.open_node("parent", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a:
            handle = await a.spawn_node(name="doomed", allow_spawn=ALLOW)
            remote = await a.spawn(Counter, "k9", process_store_url, on="doomed")
            acked: list[int] = []
            enough = trio.Event()

            async def keep_adding() -> None:
                # Asks one after another: each returns once its event is stored.
                while True:
                    try:
                        acked.append(await remote.ask(Add(1), timeout=10))
                    except trouper.TrouperError:
                        return  # the node died under this one: not acknowledged
                    if len(acked) == 50:
                        enough.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(keep_adding)
                await enough.wait()
                handle.kill()  # SIGKILL, mid-stream
            assert acked == list(range(1, len(acked) + 1))

            local = await a.spawn(Counter, "k9", process_store_url)  # takes the id over
            state = await local.ask(Get())
            assert isinstance(state, State)
            # Everything acknowledged is there; at most the one in flight more.
            assert len(acked) <= state.count <= len(acked) + 1
            assert state.total == state.count == state.sequence
            assert await local.ask(Add(1)) == state.sequence + 1


async def test_two_node_processes_racing_for_one_id(process_store_url: str) -> None:
    with trio.fail_after(60):
        async with trouper.open_node("hub", listen="tcp://127.0.0.1:0", cookie=COOKIE) as hub:
            names = ("racer-1", "racer-2")
            for name in names:
                await hub.spawn_node(name=name, allow_spawn=ALLOW)
            refs: dict[str, trouper.ActorRef] = {}

            async def start(node_id: str) -> None:
                refs[node_id] = await hub.spawn(Counter, "raced", process_store_url, on=node_id)

            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(start, name)
            results: dict[str, object] = {}

            async def write(node_id: str) -> None:
                try:
                    results[node_id] = await refs[node_id].ask(Add(1), timeout=10)
                except trouper.RemoteError as exc:
                    results[node_id] = exc

            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(write, name)
            won = [n for n, r in results.items() if r == 1]
            lost = [r for r in results.values() if isinstance(r, trouper.RemoteError)]
            assert len(won) == 1 and len(lost) == 1, results
            assert lost[0].type_name.endswith("StaleWriter")  # boxed across the wire
            # Only the winner's event is in the log, and it keeps the id.
            assert await refs[won[0]].ask(Add(1), timeout=10) == 2
            local = await hub.spawn(Counter, "raced", process_store_url)  # a third takes over
            assert await local.ask(Get()) == State(2, 2, 2, 0, 2)
