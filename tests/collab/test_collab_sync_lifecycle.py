"""Passivation and reload, memory bounded by the open documents, named
snapshots restored on every subscriber, and hostile volumes: 10,000 opens
of distinct ids on one node, and 5,000 updates persisted then recovered."""

from __future__ import annotations

import gc

import pycrdt
import pytest
import trio
from collab_sync_helpers import Client, open_doc, server_text, wait_until
from examples.collab.sync import DocumentActor, spawn_state_sync
from examples.collab.sync._messages import DIRECTORY_NAME, OpenDocument, Subscribe
from examples.collab.sync._protocol import (
    CountHosted,
    DeleteDocument,
    ListSnapshots,
    RestoreSnapshot,
    SaveSnapshot,
    SnapshotInfo,
)

import trouper


def live_documents() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, DocumentActor))


async def test_idle_documents_passivate_and_reload(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/idle.db"
    with trio.fail_after(30):
        async with trouper.open_node(store=url) as node:
            directory = await spawn_state_sync(node, passivate_after=0.3)
            baseline = live_documents()
            texts = {}
            for i in range(40):
                ref = await open_doc(node, f"doc-{i}")
                editor = Client(f"e{i}")
                await editor.send(ref, editor.insert(0, f"text of {i}"))
                texts[f"doc-{i}"] = str(editor)
            # A subscribed document stays, whatever its idle time.
            kept = await open_doc(node, "doc-0")
            async with kept.stream(Subscribe("hub")) as events:
                await events.__anext__()

                async def only_one_left() -> bool:
                    return await directory.ask(CountHosted()) == 1

                await wait_until(only_one_left, "39 documents to passivate")
                assert "doc:doc-0" in node.registry
            assert live_documents() - baseline <= 1  # memory: the open documents only

            async def none_left() -> bool:
                return await directory.ask(CountHosted()) == 0

            await wait_until(none_left, "the last one to passivate")
            for doc, text in texts.items():  # each comes back from the store
                assert await server_text(await open_doc(node, doc, create=False)) == text


async def test_named_snapshots_restore_on_every_subscriber() -> None:
    a, b = Client("a"), Client("b")
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "history")
            await a.send(ref, a.insert(0, "The first draft."))
            saved = await ref.ask(SaveSnapshot("v1"))
            assert isinstance(saved, SnapshotInfo) and saved.name == "v1" and saved.version == 1
            await b.sync(ref)
            await b.send(ref, b.edit(lambda text: text.__delitem__(slice(0, 4))))
            await a.send(ref, a.insert(len(str(a)), " More words."))
            await a.sync(ref)
            assert str(a) != "The first draft."
            followers = []
            async with ref.stream(Subscribe("hub-1")) as one, ref.stream(Subscribe("hub-2")) as two:
                for events in (one, two):
                    first = await events.__anext__()
                    doc = pycrdt.Doc()
                    doc.apply_update(first.data)
                    followers.append((doc, events))
                version = await ref.ask(RestoreSnapshot("v1"))
                for doc, events in followers:
                    event = await events.__anext__()
                    assert (event.kind, event.version) == ("update", version)
                    doc.apply_update(event.data)
                    assert str(doc.get("content", type=pycrdt.Text)) == "The first draft."
            for client in (a, b):
                await client.sync(ref)
                assert str(client) == "The first draft."
            assert await server_text(ref) == "The first draft."
            assert [info.name for info in (await ref.ask(ListSnapshots())).snapshots] == ["v1"]
            with pytest.raises(trouper.ActorNotFound, match="no snapshot 'v9'"):
                await ref.ask(RestoreSnapshot("v9"))
            with pytest.raises(trouper.InvalidArgument, match="bad snapshot name"):
                await ref.ask(SaveSnapshot("../x"))


async def test_ten_thousand_opens_past_the_limit_are_refused_and_harm_nothing() -> None:
    a = Client("a")
    with trio.fail_after(60):
        async with trouper.open_node() as node:
            directory = await spawn_state_sync(node, max_documents=50)
            keep = await open_doc(node, "doc-0")
            await a.send(keep, a.insert(0, "still here"))
            refused = 0
            for i in range(1, 10_000):
                try:
                    await directory.ask(OpenDocument(f"doc-{i}"), timeout=10)
                except trouper.InvalidArgument as exc:
                    assert "hosts 50 documents, its limit (max_documents)" in str(exc)
                    refused += 1
            assert refused == 10_000 - 50
            assert await directory.ask(CountHosted()) == 50
            assert await node.lookup(DIRECTORY_NAME) == directory  # never restarted
            assert await open_doc(node, "doc-0") == keep
            assert await server_text(keep) == "still here"
            assert await a.send(keep, a.insert(0, "and ")) == 2
            await node.stop(keep)  # room for one more: served again
            await open_doc(node, "doc-9999")


async def test_five_thousand_updates_persisted_then_recovered(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/many.db"
    a = Client("a")
    with trio.fail_after(60):
        async with trouper.open_node(store=url) as node:
            await spawn_state_sync(node, snapshot_every=500)
            ref = await open_doc(node, "many")
            for i in range(5000):
                await a.send(ref, a.insert(len(str(a)), f"{i % 10}"))
            await node.stop(ref)
        async with trouper.open_node(store=url) as node:
            await spawn_state_sync(node)
            started = trio.current_time()
            ref = await open_doc(node, "many", create=False)
            recovered = await server_text(ref)
            took = trio.current_time() - started
            assert recovered == str(a) and len(recovered) == 5000
            assert took < 5.0, f"recovery took {took:.2f} s"


async def test_deleting_a_document_ends_its_streams_and_empties_it(tmp_path: object) -> None:
    a = Client("a")
    with trio.fail_after(20):
        async with trouper.open_node(store=f"sqlite:///{tmp_path}/deleted.db") as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "gone")
            await a.send(ref, a.insert(0, "secret"))
            await ref.ask(SaveSnapshot("v1"))
            async with ref.stream(Subscribe("hub")) as events:
                await events.__anext__()
                await ref.ask(DeleteDocument())
                assert [event async for event in events] == []  # ended, normally
            again = await open_doc(node, "gone")
            assert again != ref
            assert await server_text(again) == ""  # the reset is in the log
            assert (await again.ask(ListSnapshots())).snapshots == []
