"""The DocumentActor and its directory on real stores: convergence, the
acknowledgement after the store, recovery, offline merges, refused input."""

from __future__ import annotations

import random

import pytest
import trio
from collab_sync_helpers import Client, open_doc, server_text
from examples.collab.sync import _catalog, spawn_state_sync
from examples.collab.sync._document import MAX_UPDATE_BYTES
from examples.collab.sync._messages import (
    DIRECTORY_NAME,
    ApplyAwareness,
    ApplyUpdate,
    DropOrigin,
    GetAwareness,
    OpenDocument,
    SyncRequest,
)
from examples.collab.sync._protocol import CountHosted, Operation, Operations, OperationsSince

import trouper


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/collab.db"
    return str(request.getfixturevalue("postgres_url"))


async def test_two_clients_converge_ack_after_store_and_recover(store_url: str) -> None:
    rng = random.Random(15)
    a, b = Client("a"), Client("b")
    with trio.fail_after(30):
        async with trouper.open_node(store=store_url) as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "notes")
            await a.sync(ref)
            await b.sync(ref)
            for i in range(40):
                who = a if rng.random() < 0.5 else b
                update = who.insert(rng.choice([0, len(str(who))]), f" {who.name}{i} ")
                version = await who.send(ref, update)
                # Acknowledged only once stored: the log already holds it.
                stored = await ref.ask(OperationsSince(version - 1, 1))
                assert stored == Operations([Operation(version, update)])
            await a.sync(ref)
            await b.sync(ref)
            assert str(a) == str(b) == await server_text(ref)
            assert len(str(a).split()) == 40
            await node.stop(ref)
            again = await open_doc(node, "notes")
            assert again != ref
            assert await server_text(again) == str(a)
        # Another node (a new process would be the same) on the same store.
        async with trouper.open_node(store=store_url) as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "notes", create=False)
            assert await server_text(ref) == str(a)


async def test_offline_edits_merge_without_duplicates(tmp_path: object) -> None:
    a, b = Client("a"), Client("b")
    with trio.fail_after(20):
        async with trouper.open_node(store=f"sqlite:///{tmp_path}/offline.db") as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "offline")
            await a.send(ref, a.insert(0, "shared line\n"))
            await b.sync(ref)
            # Both go offline and edit the same line.
            a.insert(0, "A says hi. ")
            b.insert(len(str(b)), "B was here.")
            await a.sync(ref)
            await b.sync(ref)
            await a.sync(ref)  # picks up b's edit
            text = await server_text(ref)
            assert str(a) == str(b) == text
            assert text.count("shared line") == 1
            assert text.count("A says hi.") == 1 and text.count("B was here.") == 1
            # A reconnect with nothing new changes nothing (no duplicated text).
            version = await b.sync(ref)
            assert await server_text(ref) == text
            assert await a.sync(ref) == version


async def test_malformed_and_huge_updates_are_refused_and_the_actor_lives() -> None:
    a = Client("a")
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "hostile")
            version = await a.send(ref, a.insert(0, "good"))
            for bad in (b"", b"garbage!", a.insert(4, " more")[:-3]):
                with pytest.raises(trouper.InvalidArgument, match="malformed Yjs update"):
                    await ref.ask(ApplyUpdate(bad, "evil"))
            with pytest.raises(trouper.InvalidArgument, match="MAX_UPDATE_BYTES"):
                await ref.ask(ApplyUpdate(b"\x00" * (MAX_UPDATE_BYTES + 1), "evil"))
            with pytest.raises(trouper.InvalidArgument, match="state vector"):
                await ref.ask(SyncRequest(b"\xff\xff\xff"))
            # Nothing was stored, and it is the same actor, not a restart.
            assert await ref.ask(OperationsSince(version, 10)) == Operations([])
            assert await open_doc(node, "hostile") == ref
            assert await server_text(ref) == "good"
            assert await a.send(ref, a.insert(4, "!")) == version + 1


async def test_bad_ids_and_unknown_documents_are_refused() -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            directory = await spawn_state_sync(node)
            for bad in ("", "x" * 129, "a/b", "../etc", "white space", "ünïcode"):
                with pytest.raises(trouper.InvalidArgument, match="bad document id"):
                    await directory.ask(OpenDocument(bad))
            with pytest.raises(trouper.ActorNotFound, match="no document 'nope'"):
                await directory.ask(OpenDocument("nope", create=False))
            assert await directory.ask(CountHosted()) == 0
            assert await node.lookup(DIRECTORY_NAME) == directory  # never restarted
            await open_doc(node, "x" * 128)
            assert await directory.ask(CountHosted()) == 1


def _awareness(client: int, clock: int, state: str) -> bytes:
    from examples.collab.sync._awareness import Entry, encode

    return encode([Entry(client, clock, state, "")])


async def test_awareness_is_kept_per_origin_and_dropped_with_it() -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            ref = await open_doc(node, "aware")
            await ref.tell(ApplyAwareness(_awareness(1, 1, '{"user":"ada"}'), "conn-1"))
            await ref.tell(ApplyAwareness(_awareness(2, 4, '{"user":"bob"}'), "conn-2"))
            await ref.tell(ApplyAwareness(_awareness(2, 3, '{"user":"old"}'), "conn-2"))
            from examples.collab.sync._awareness import decode

            states = {e.client: e.state for e in decode(await ref.ask(GetAwareness()))}
            assert states == {1: '{"user":"ada"}', 2: '{"user":"bob"}'}
            await ref.tell(DropOrigin("conn-1"))
            states = {e.client: e.state for e in decode(await ref.ask(GetAwareness()))}
            assert states == {2: '{"user":"bob"}'}
            with pytest.raises(trouper.InvalidArgument, match="MAX_AWARENESS_STATE_BYTES"):
                await ref.ask(ApplyAwareness(_awareness(3, 1, "x" * 5000), "conn-3"))
            await ref.tell(ApplyAwareness(b"\x05\x01", "conn-3"))  # a tell: logged, no failure
            assert await open_doc(node, "aware") == ref


async def test_the_catalog_is_bounded_and_empty_updates_are_not_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_catalog, "MAX_CATALOG", 3)
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            directory = await spawn_state_sync(node)
            refs = [await open_doc(node, f"d{i}") for i in range(3)]
            with pytest.raises(trouper.InvalidArgument, match=r"holds 3 documents.*MAX_CATALOG"):
                await directory.ask(OpenDocument("d3"))
            assert await directory.ask(CountHosted()) == 3  # nothing was created for it
            assert await open_doc(node, "d0") == refs[0]
            a = Client("a")
            version = await a.send(refs[0], a.insert(0, "x"))
            assert await a.send(refs[0], b"\x00\x00") == version
            assert await refs[0].ask(OperationsSince(version, 10)) == Operations([])
