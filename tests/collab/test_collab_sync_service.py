"""The StateSync service through a proxy (from another node too), and its
HTTP JSON routes on a real gateway."""

from __future__ import annotations

import httpx
import pytest
import trio
from collab_sync_helpers import Client, wait_until
from examples.collab._shared import SESSION_EVENTS, SessionEnded
from examples.collab.sync import StateSync, add_document_routes, spawn_state_sync
from examples.collab.sync._messages import LockFence
from examples.collab.sync._protocol import Operation

import trouper
from trouper.web import Routes, WebGateway, open_gateway

COOKIE = "collab-sync-service"


async def test_the_service_from_another_node(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/service.db"
    a = Client("a")
    with trio.fail_after(30):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE, store=url) as one,
            trouper.open_node("b", seeds=one.addresses, cookie=COOKIE, store=url) as two,
        ):
            await spawn_state_sync(one)
            await spawn_state_sync(two)
            await two.wait_for_members(2, timeout=10)
            sync = two.proxy(StateSync, timeout=20)
            info = await sync.create_document("plan", "The plan")
            assert (info.id, info.title, info.version) == ("plan", "The plan", 0)
            assert [m.id for m in (await sync.list_documents()).documents] == ["plan"]
            first, second = a.insert(0, "step one"), a.insert(8, ", step two")
            v1 = await sync.apply("plan", first)
            v2 = await sync.apply("plan", second)
            ops = (await sync.operations_since("plan", 0)).operations
            assert ops == [Operation(v1, first), Operation(v2, second)]
            ops = (await sync.operations_since("plan", v1, limit=5)).operations
            assert ops == [Operation(v2, second)]
            lease = await sync.acquire_lock("plan", "*", "s1", 30.0)
            v3 = await sync.apply("plan", a.insert(0, "> "), LockFence("*", lease.token))
            with pytest.raises(trouper.InvalidArgument, match="stale lock token"):
                await sync.apply("plan", a.insert(0, "x"), LockFence("*", lease.token - 1))
            assert await sync.release_lock("plan", "*", "s1", lease.token) is True
            # A session ending anywhere in the cluster releases its locks.
            await sync.acquire_lock("plan", "intro", "s9", 30.0)
            await wait_until(lambda: two.subscribers(SESSION_EVENTS) >= 1, "interest")
            two.publish(SESSION_EVENTS, SessionEnded("s9", "ada", "expired"))

            async def released() -> bool:
                try:
                    await sync.acquire_lock("plan", "intro", "s10", 30.0)
                except trouper.InvalidArgument:
                    return False
                return True

            await wait_until(released, "s9's lock to go")
            assert await sync.release_lock("plan", "intro", "s10") is True
            stats = await sync.stats("plan")
            assert stats.version > v3 and stats.size > 0 and stats.updates_per_second > 0
            saved = await sync.save_snapshot("plan", "first")
            assert [s.name for s in (await sync.list_snapshots("plan")).snapshots] == [saved.name]
            await sync.apply("plan", a.insert(0, "more "))
            await sync.restore_snapshot("plan", "first")
            events = []
            async with sync.subscribe("plan") as stream:  # type: ignore[attr-defined]
                async for event in stream:
                    events.append(event)
                    break
            assert events[0].kind == "resync"
            with pytest.raises(trouper.InvalidArgument, match="bad document id"):
                await sync.get_document("no/slashes")
            with pytest.raises(trouper.ActorNotFound):
                await sync.get_document("missing")
            assert await sync.delete_document("plan") is True
            assert (await sync.list_documents()).documents == []
            assert await sync.delete_document("plan") is False


async def test_the_http_routes() -> None:
    with trio.fail_after(30):
        async with trouper.open_node() as node:
            await spawn_state_sync(node)
            routes = Routes()
            add_document_routes(routes, node)
            async with (
                open_gateway(node, WebGateway(routes=routes)) as gw,
                httpx.AsyncClient(base_url=gw.url) as http,
            ):
                made = await http.post("/api/docs", json={"id": "notes", "title": "Notes"})
                assert made.status_code == 201
                assert made.json()["id"] == "notes" and made.json()["version"] == 0
                listed = (await http.get("/api/docs")).json()["documents"]
                assert [d["title"] for d in listed] == ["Notes"]
                assert (await http.get("/api/docs/notes")).json()["title"] == "Notes"
                stats = (await http.get("/api/docs/notes/stats")).json()
                assert stats["doc"] == "notes" and stats["editors"] == 0
                saved = await http.post("/api/docs/notes/snapshots", json={"name": "v1"})
                assert saved.status_code == 201 and saved.json()["name"] == "v1"
                names = (await http.get("/api/docs/notes/snapshots")).json()["snapshots"]
                assert [s["name"] for s in names] == ["v1"]
                restored = await http.post("/api/docs/notes/snapshots/v1/restore")
                assert restored.json()["version"] >= 1
                lock = await http.post(
                    "/api/docs/notes/locks", json={"scope": "*", "session_id": "s1", "ttl": 10}
                )
                assert lock.status_code == 201 and lock.json()["token"] >= 1
                conflict = await http.post(
                    "/api/docs/notes/locks", json={"scope": "intro", "session_id": "s2"}
                )
                assert conflict.status_code == 400 and "conflicts" in conflict.json()["message"]
                released = await http.delete("/api/docs/notes/locks/*", params={"session_id": "s1"})
                assert released.json() == {"released": True}
                assert (await http.get("/api/docs/nope")).status_code == 404
                bad = await http.get("/api/docs/bad%20id")
                assert bad.status_code == 400 and "bad document id" in bad.json()["message"]
                missing = await http.post("/api/docs/notes/snapshots/v9/restore")
                assert missing.status_code == 404
                assert (await http.delete("/api/docs/notes")).json() == {"deleted": True}
                assert (await http.get("/api/docs")).json() == {"documents": [], "next_after": ""}
