"""Failover: the node owning a document goes (cleanly, or kill -9 of a node
process), and the next OpenDocument on another node brings the document
back from the shared store, with every acknowledged update and no
duplicated text; a stale old owner cannot write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
from collab_sync_helpers import Client, open_doc, server_text
from examples.collab.sync import DocumentActor, DocumentDirectory, spawn_state_sync
from examples.collab.sync._messages import ApplyUpdate, OpenDocument

import trouper

ROOT = Path(__file__).resolve().parents[2]
COOKIE = "collab-sync-failover"
#: Fast failure detection: a killed node is "down" within a couple of seconds.
FAST = {"heartbeat_interval": 0.1, "down_after": 1.5, "acceptable_pause": 0.5}
#: For a node process: it may pause for seconds importing the example when
#: the machine is busy (a remote spawn imports it), and must not be taken
#: for dead then.
PATIENT = {"heartbeat_interval": 0.2, "down_after": 5.0, "acceptable_pause": 3.0}


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    return str(request.getfixturevalue("postgres_url"))


async def run_node(
    name: str, store: str, close: trio.Event, closed: trio.Event, *, task_status: trio.TaskStatus
) -> None:
    """A node with the state-sync core in a task of its own, until ``close``."""
    try:
        async with trouper.open_node(
            name, listen="tcp://127.0.0.1:0", cookie=COOKIE, store=store
        ) as node:
            await spawn_state_sync(node)
            task_status.started(node)
            await close.wait()
    finally:
        closed.set()


async def test_the_owners_node_closes_and_another_node_recovers_it(shared_store: str) -> None:
    editor = Client("ed")
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            close, closed = trio.Event(), trio.Event()
            a = await nursery.start(run_node, "a", shared_store, close, closed)
            async with trouper.open_node(
                "b", seeds=a.addresses, cookie=COOKIE, store=shared_store, **FAST
            ) as b:
                await spawn_state_sync(b)
                await b.wait_for_members(2, timeout=10)
                ref = await open_doc(a, "shared")
                assert ref.node_id == "a"
                assert await open_doc(b, "shared") == ref  # found, not created twice
                for i in range(30):
                    await editor.send(ref, editor.insert(len(str(editor)), f"{i} "))
                acknowledged = str(editor)
                close.set()  # node a leaves
                await closed.wait()
                moved = await open_doc(b, "shared")
                assert moved.node_id == "b"
                assert await server_text(moved) == acknowledged
                await editor.sync(moved)  # a reconnecting client duplicates nothing
                assert await server_text(moved) == acknowledged == str(editor)


async def test_a_stale_owner_cannot_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/stale.db"
    editor = Client("ed")
    with trio.fail_after(30):
        async with trouper.open_node("a", store=url) as a, trouper.open_node("b", store=url) as b:
            await spawn_state_sync(a)
            old = await open_doc(a, "contested")
            await editor.send(old, editor.insert(0, "kept "))
            # Node b starts its own instance (a partition: it thinks a is gone).
            new = await b.spawn(DocumentActor, "contested", url, name="doc:contested")
            assert await server_text(new) == "kept "
            with pytest.raises(trouper.StaleWriter):
                await old.ask(ApplyUpdate(editor.insert(0, "lost "), "ed"))
            with trio.fail_after(5):
                while True:  # the stale owner stops
                    try:
                        await old.ask(OpenDocument("x"), timeout=1)
                    except (trouper.ActorDead, trouper.UnhandledMessage) as exc:
                        if isinstance(exc, trouper.ActorDead):
                            break
                    await trio.sleep(0.01)
            assert await server_text(new) == "kept "  # nothing of the stale write


async def test_kill_9_of_the_owners_node_process(
    shared_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    url = shared_store
    editor = Client("ed")
    with trio.fail_after(60):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, store=url, **PATIENT
        ) as parent:
            await spawn_state_sync(parent)
            handle = await parent.spawn_node(
                name="victim", allow_spawn=["examples.collab.sync._directory:DocumentDirectory"]
            )
            directory = await parent.spawn(DocumentDirectory, url, on="victim")
            ref = await directory.ask(OpenDocument("doomed"), timeout=20)
            assert ref.node_id == "victim"
            for i in range(25):
                await editor.send(ref, editor.insert(len(str(editor)), f"{i} "))
            acknowledged = str(editor)
            handle.kill()
            with trio.fail_after(30):
                # Until the victim is found down its name may still resolve
                # (to a ref that fails with NodeDown): a client asks again.
                moved = await open_doc(parent, "doomed")
                while moved.node_id != "parent":
                    await trio.sleep(0.05)
                    moved = await open_doc(parent, "doomed")
            assert await server_text(moved) == acknowledged
            await editor.sync(moved)
            assert await server_text(moved) == acknowledged
