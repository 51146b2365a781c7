"""The admin endpoint: real nodes, real HTTP (httpx) on 127.0.0.1 port 0."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import trouper

COOKIE = b"admin-test-cookie"
TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class Worker(trouper.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


class Parent(trouper.Actor):
    def __init__(self, n: int) -> None:
        self.n = n

    async def on_start(self) -> None:
        for _ in range(self.n):
            await self.ctx.spawn(Worker)


@asynccontextmanager
async def client(node: trouper.Node) -> AsyncIterator[httpx.AsyncClient]:
    assert node.admin_address is not None
    async with httpx.AsyncClient(base_url=f"http://{node.admin_address}") as http:
        yield http


async def poll(http: httpx.AsyncClient, url: str, ok: Any) -> dict[str, Any]:
    """GET ``url`` until ``ok(body)``; the caller's fail_after bounds it."""
    while True:
        reply = await http.get(url)
        if reply.status_code == 200 and ok(body := reply.json()):
            return body
        await trio.sleep(0.02)


def find(entry: dict[str, Any], path: str) -> dict[str, Any] | None:
    if entry["path"] == path:
        return entry
    for child in entry["children"]:
        found = find(child, path)
        if found is not None:
            return found
    return None


async def test_reads_health_tree_actor_cluster_and_dead_letters() -> None:
    with trio.fail_after(20):
        async with trouper.open_node("solo", admin="127.0.0.1:0") as node, client(node) as http:
            ref = await node.spawn(Worker, name="w")
            assert (await http.get("/healthz")).json() == {"status": "alive", "node": "solo"}
            assert (await http.get("/readyz")).status_code == 200
            info = (await http.get("/api/node")).json()
            assert info["node"] == "solo" and info["admin"] == f"http://{node.admin_address}"
            assert info["stats"]["actors"] == node.stats().actors
            tree = (await http.get("/api/tree")).json()
            user = tree["roots"][0]
            assert user["path"] == "/user" and user["children_total"] == 1
            w = find(user, "/user/w")
            assert w is not None
            assert w["class"].endswith("test_admin.Worker")
            assert (w["state"], w["restarts"], w["mailbox_depth"]) == ("running", 0, 0)
            system = tree["roots"][1]
            assert find(system, "/system/admin") is not None
            actor = (await http.get("/api/actors/user/w")).json()
            assert actor["uid"] == ref.uid and actor["node"] == "solo"
            missing = await http.get("/api/actors/user/nobody")
            assert missing.status_code == 404 and missing.json()["error"] == "actor-not-found"
            assert (await http.get("/api/nothing")).status_code == 404
            bad = await http.get("/api/tree?depth=deep")
            assert bad.status_code == 400 and "integers" in bad.json()["message"]
            members = (await http.get("/api/cluster")).json()["members"]
            assert [(m["node"], m["status"], m["admin"]) for m in members] == [("solo", "up", True)]
            await node.stop(ref)
            await ref.tell("lost")
            letters = await poll(http, "/api/deadletters", lambda b: b["recent"])
            assert letters["recent"][0]["recipient"] == "/user/w"
            assert letters["recent"][0]["message_type"] == "str"
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200
            assert "trouper_messages_total" in metrics.text


async def test_actions_need_a_token_and_the_api_is_read_only_without_one() -> None:
    with trio.fail_after(20):
        async with trouper.open_node(admin="127.0.0.1:0") as node, client(node) as http:
            await node.spawn(Worker, name="w")
            refused = await http.post("/api/actors/user/w/stop", headers=AUTH)
            assert refused.status_code == 403
            assert refused.json()["error"] == "read-only"
            assert "admin_token" in refused.json()["message"]
            assert node.kernel.cell_at("/user/w") is not None
        async with (
            trouper.open_node(admin="127.0.0.1:0", admin_token=TOKEN) as node,
            client(node) as http,
        ):
            await node.spawn(Worker, name="w")
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
                denied = await http.post("/api/actors/user/w/stop", headers=headers)
                assert denied.status_code == 401
                assert denied.headers["www-authenticate"].startswith("Bearer")
            assert (await http.post("/api/actors/user/w/explode", headers=AUTH)).status_code == 404
            guardian = await http.post("/api/actors/user/stop", headers=AUTH)
            assert guardian.status_code == 403
            itself = await http.post("/api/actors/system/admin/stop", headers=AUTH)
            assert itself.status_code == 403 and "itself" in itself.json()["message"]
            stopped = await http.post("/api/actors/user/w/stop", headers=AUTH)
            assert stopped.status_code == 200 and stopped.json()["ok"] is True
            assert node.kernel.cell_at("/user/w") is None
            gone = await http.post("/api/actors/user/w/stop", headers=AUTH)
            assert gone.status_code == 404


async def test_kill_is_a_failure_its_supervisor_restarts_and_restart_is_deliberate() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node(admin="127.0.0.1:0", admin_token=TOKEN) as node,
            client(node) as http,
        ):
            ref = await node.spawn(Worker, name="w")
            killed = await http.post("/api/actors/user/w/kill", headers=AUTH)
            assert killed.status_code == 202

            def restarted(body: dict[str, Any]) -> bool:
                w = find(body["roots"][0], "/user/w")
                return w is not None and w["restarts"] == 1 and w["state"] == "running"

            tree = await poll(http, "/api/tree?path=/user", restarted)
            w = find(tree["roots"][0], "/user/w")
            assert w is not None and (w["restarts"], w["state"]) == (1, "running")
            assert w["uid"] == ref.uid  # the same actor, a new instance
            assert await ref.ask("still here", timeout=5) == "still here"
            restarted = await http.post("/api/actors/user/w/restart", headers=AUTH)
            assert restarted.status_code == 200
            actor = (await http.get("/api/actors/user/w")).json()
            assert (actor["restarts"], actor["state"]) == (2, "running")


async def test_token_file_and_bad_configuration() -> None:
    with trio.fail_after(20):
        with pytest.raises(trouper.ConfigurationError, match="HOST:PORT"):
            async with trouper.open_node(admin="localhost"):
                pass
        with pytest.raises(trouper.ConfigurationError, match="needs admin="):
            async with trouper.open_node(admin_token=TOKEN):
                pass
        with pytest.raises(trouper.ConfigurationError, match="at least 16"):
            async with trouper.open_node(admin="127.0.0.1:0", admin_token="short"):
                pass
        with pytest.raises(trouper.ConfigurationError, match="cannot read the admin token file"):
            async with trouper.open_node(admin="127.0.0.1:0", admin_token_file="/nonexistent"):
                pass


async def test_a_busy_port_is_a_clear_error() -> None:
    with trio.fail_after(20):
        async with trouper.open_node(admin="127.0.0.1:0") as node:
            with pytest.raises(trouper.ConfigurationError, match=r"cannot listen on .*in use"):
                async with trouper.open_node(admin=node.admin_address):
                    pass


async def test_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with trio.fail_after(20):
        async with (
            trouper.open_node(admin="127.0.0.1:0", admin_token_file=token_file) as node,
            client(node) as http,
        ):
            await node.spawn(Worker, name="w")
            assert (await http.post("/api/actors/user/w/stop", headers=AUTH)).status_code == 200
            with pytest.raises(trouper.ConfigurationError, match="already"):
                from trouper.observability import AdminConfig, start_admin

                await start_admin(node, AdminConfig())


async def test_a_big_tree_is_bounded_and_aggregated_by_class() -> None:
    with trio.fail_after(60):
        async with trouper.open_node(admin="127.0.0.1:0") as node, client(node) as http:
            await node.spawn(Parent, 10_000, name="big")
            reply = await http.get("/api/tree?path=/user/big")
            assert len(reply.content) < 100_000
            big = reply.json()["roots"][0]
            assert big["children_total"] == 10_000
            assert len(big["children"]) == 100  # the default cap per actor
            (more,) = big["more"]
            assert more["class"].endswith("test_admin.Worker")
            assert more["count"] == 9_900 and more["states"] == {"running": 9_900}
            capped = (await http.get("/api/tree?path=/user/big&children=1000000")).json()
            assert len(capped["roots"][0]["children"]) == 1000  # the hard cap
            summary = (await http.get("/api/actors/user/big")).json()
            assert summary["children_total"] == 10_000
            assert list(summary["children_by_class"].values()) == [10_000]
            assert len(summary["children"]) == 1000


@asynccontextmanager
async def two_nodes(**options: Any) -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    async with (
        trouper.open_node(
            "n0", listen="tcp://127.0.0.1:0", cookie=COOKIE, admin="127.0.0.1:0", **options
        ) as a,
        trouper.open_node(
            "n1",
            listen="tcp://127.0.0.1:0",
            seeds=a.addresses,
            cookie=COOKIE,
            admin="127.0.0.1:0",
            **options,
        ) as b,
    ):
        await a.wait_for_members(2, timeout=10)
        await b.wait_for_members(2, timeout=10)
        yield a, b


async def test_any_node_answers_for_the_cluster_through_the_cluster() -> None:
    with trio.fail_after(30):
        async with two_nodes(admin_token=TOKEN) as (a, b), client(a) as http:
            ref = await b.spawn(Worker, name="remote-w")
            members = (await http.get("/api/cluster")).json()["members"]
            assert {m["node"]: m["status"] for m in members} == {"n0": "up", "n1": "up"}
            peer = next(m for m in members if m["node"] == "n1")
            assert peer["connected"] is True and peer["phi"] is not None
            assert peer["rtt_seconds"] is not None and peer["rtt_seconds"] >= 0
            assert [m["admin"] for m in members] == [True, True]
            # Through n0's endpoint, n1's admin actor answers (an ask).
            await poll(http, "/api/node?node=n1", lambda body: body["node"] == "n1")
            tree = (await http.get("/api/tree?node=n1&path=/user")).json()
            assert tree["node"] == "n1"
            assert find(tree["roots"][0], "/user/remote-w") is not None
            actor = (await http.get("/api/actors/user/remote-w?node=n1")).json()
            assert actor["node"] == "n1" and actor["uid"] == ref.uid
            killed = await http.post("/api/actors/user/remote-w/kill?node=n1", headers=AUTH)
            assert killed.status_code == 202
            await poll(
                http,
                "/api/actors/user/remote-w?node=n1",
                lambda b: b["restarts"] == 1 and b["state"] == "running",
            )
            unknown = await http.get("/api/tree?node=nowhere")
            assert unknown.status_code == 404 and "nowhere" in unknown.json()["message"]
            metrics = await http.get("/metrics?node=n1")
            assert metrics.status_code == 200 and metrics.headers["content-type"].startswith(
                "text/plain"
            )
            assert 'trouper_cluster_members{status="up"} 2.0' in metrics.text
            letters = (await http.get("/api/deadletters?node=n1")).json()
            assert letters["node"] == "n1"
            assert json.loads((await http.get("/readyz")).text)["status"] == "ready"


class SlowToStop(trouper.Actor):
    def __init__(self, stopping: trio.Event, release: trio.Event) -> None:
        self.stopping = stopping
        self.release = release

    async def on_stop(self) -> None:
        self.stopping.set()
        await self.release.wait()


async def test_readyz_says_not_ready_once_the_node_begins_to_stop() -> None:
    stopping, release, leave, opened = trio.Event(), trio.Event(), trio.Event(), trio.Event()
    addresses: list[str] = []

    async def run_node() -> None:
        async with trouper.open_node(admin="127.0.0.1:0") as node:
            await node.spawn(SlowToStop, stopping, release)
            addresses.append(str(node.admin_address))
            opened.set()
            await leave.wait()

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_node)
            await opened.wait()
            async with httpx.AsyncClient(base_url=f"http://{addresses[0]}") as http:
                assert (await http.get("/readyz")).json()["status"] == "ready"
                leave.set()
                await stopping.wait()  # /user is stopping; /system still serves
                reply = await http.get("/readyz")
                assert reply.status_code == 503
                assert reply.json() == {
                    "status": "not-ready",
                    "node": reply.json()["node"],
                    "reason": "stopping",
                }
                assert (await http.get("/healthz")).status_code == 200
                release.set()


async def test_the_admin_app_shares_the_web_gateways_port() -> None:
    from trouper.observability import AdminApp
    from trouper.web import WebGateway, open_gateway

    with trio.fail_after(20):
        async with trouper.open_node("gw") as node:
            await node.spawn(Worker, name="w")
            config = WebGateway(mounts={"/admin": AdminApp(node, TOKEN)})
            async with (
                open_gateway(node, config) as gateway,
                httpx.AsyncClient(base_url=gateway.url) as http,
            ):
                assert (await http.get("/healthz")).json()["node"] == "gw"  # the gateway's
                actor = (await http.get("/admin/api/actors/user/w")).json()
                assert actor["path"] == "/user/w"
                assert "trouper_messages_total" in (await http.get("/admin/metrics")).text
                stopped = await http.post("/admin/api/actors/user/w/stop", headers=AUTH)
                assert stopped.status_code == 200
                assert node.kernel.cell_at("/user/w") is None
                assert (await http.get("/administrator")).status_code == 404
        with pytest.raises(trouper.ConfigurationError, match="mounts"):
            WebGateway(mounts={"admin/": AdminApp})
