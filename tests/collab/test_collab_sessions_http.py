"""The session API over HTTP, through a real gateway on 127.0.0.1 (httpx):
every route, 201 vs 200 on create, and the error bodies of the gateway's
status map (400 naming the problem, 404 for an unknown or expired session,
422 for a body that does not decode)."""

from pathlib import Path

import httpx
import pytest
import trio
from collab_sessions_helpers import url_for
from examples.collab._shared import SESSION_EVENTS, SessionEnded
from examples.collab.sessions import add_session_routes, spawn_session_service

import trouper
from trouper.web import Routes, WebGateway, open_gateway


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_the_routes(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url=url)
            routes = Routes()
            add_session_routes(routes, node)
            async with (
                open_gateway(node, WebGateway(routes=routes)) as gw,
                httpx.AsyncClient(base_url=gw.url) as http,
                node.subscribe(SESSION_EVENTS) as events,
            ):
                made = await http.post(
                    "/api/sessions", json={"user": "ada", "connection": "ws-1", "data": {"a": "1"}}
                )
                assert made.status_code == 201, made.text
                record = made.json()
                sid = record["id"]
                assert record["user"] == "ada" and record["ttl"] == 30.0
                again = await http.post("/api/sessions", json={"user": "ada", "connection": "ws-1"})
                assert again.status_code == 200 and again.json()["id"] == sid

                assert (await http.get(f"/api/sessions/{sid}")).json() == record
                beat = await http.post(f"/api/sessions/{sid}/heartbeat")
                assert beat.status_code == 200
                assert beat.json()["last_heartbeat"] >= record["last_heartbeat"]
                patched = await http.patch(f"/api/sessions/{sid}", json={"data": {"b": "2"}})
                assert patched.status_code == 200 and patched.json()["data"] == {"b": "2"}

                other = (
                    await http.post(
                        "/api/sessions", json={"user": "bo", "connection": "ws-2", "ttl": 5}
                    )
                ).json()
                listed = await http.get("/api/sessions", params={"user": "ada"})
                assert [r["id"] for r in listed.json()] == [sid]
                by_conn = await http.get("/api/sessions", params={"connection": "ws-2"})
                assert [r["id"] for r in by_conn.json()] == [other["id"]]
                everyone = await http.get("/api/sessions", params={"active": "true", "limit": 1})
                assert len(everyone.json()) == 1

                gone = await http.delete(f"/api/sessions/{sid}")
                assert gone.status_code == 204
                assert await events.receive() == SessionEnded(sid, "ada", "deleted")
                missing = await http.get(f"/api/sessions/{sid}")
                assert missing.status_code == 404
                assert missing.json()["error"] == "session-not-found"
                assert "no session" in missing.json()["message"]
                assert (await http.delete(f"/api/sessions/{sid}")).status_code == 404
                assert (await http.post(f"/api/sessions/{sid}/heartbeat")).status_code == 404


async def test_bad_requests_get_a_status_and_a_reason(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with trouper.open_node() as node:
            await spawn_session_service(node, store_url=f"sqlite:///{tmp_path}/s.db")
            routes = Routes()
            add_session_routes(routes, node)
            async with (
                open_gateway(node, WebGateway(routes=routes)) as gw,
                httpx.AsyncClient(base_url=gw.url) as http,
            ):

                async def refused(response: httpx.Response, status: int, words: str) -> None:
                    assert response.status_code == status, response.text
                    body = response.json()
                    assert words in body["message"], body
                    assert body["request_id"]

                post = "/api/sessions"
                await refused(
                    await http.post(post, json={"user": "ada", "connection": "c", "ttl": -5}),
                    400,
                    "ttl -5.0 is out of range",
                )
                await refused(
                    await http.post(post, json={"user": "x" * 20_000, "connection": "c"}),
                    400,
                    "user has 20000 characters, more than the 128 allowed",
                )
                huge = {f"k{i}": "v" for i in range(1000)}
                await refused(
                    await http.post(post, json={"user": "ada", "connection": "c", "data": huge}),
                    400,
                    "data has 1000 keys",
                )
                await refused(await http.post(post, json={"user": "ada"}), 422, "connection")
                await refused(
                    await http.post(post, json={"user": "ada", "connection": 7}), 422, "str"
                )
                await refused(
                    await http.get("/api/sessions/not-an-id"), 400, "'not-an-id' is malformed"
                )
                await refused(
                    await http.get("/api/sessions", params={"limit": 5000}),
                    400,
                    "limit 5000 is out of range",
                )
                await refused(await http.get("/api/sessions/" + "A" * 22), 404, "no session")
                over = await http.post(
                    post, content=b'{"user": "' + b"x" * (10 << 20) + b'", "connection": "c"}'
                )
                assert over.status_code == 413  # the gateway's own body bound
                # None of that left anything behind.
                assert (await http.get("/api/sessions", params={"active": "true"})).json() == []


async def test_a_gateway_without_a_service_of_its_own_uses_another_node(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie="http-test") as a,
            trouper.open_node("b", seeds=a.addresses, cookie="http-test") as b,
        ):
            await spawn_session_service(a, store_url=url)  # b runs none
            await b.registry.wait_for_members("collab.sessions", 1, timeout=5)
            routes = Routes()
            add_session_routes(routes, b)
            async with (
                open_gateway(b, WebGateway(routes=routes)) as gw,
                httpx.AsyncClient(base_url=gw.url) as http,
            ):
                made = await http.post("/api/sessions", json={"user": "ada", "connection": "c"})
                assert made.status_code == 201
                assert (await b.lookup(f"session:{made.json()['id']}")).node_id == "a"
                # A's refusals and not-founds arrive boxed; the routes answer
                # them as they would locally.
                missing = await http.get("/api/sessions/" + "Q" * 22)
                assert missing.status_code == 404, missing.text
                assert missing.json()["error"] == "session-not-found"
                bad = await http.post("/api/sessions", json={"user": "", "connection": "c"})
                assert (bad.status_code, bad.json()["message"]) == (400, "user is empty (on a)")
