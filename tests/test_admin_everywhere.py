"""Every clustered node answers admin queries, HTTP or not: ``?node=ID``
reaches a member that runs no admin endpoint (its ``/system/observer``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

import trouper
from trouper.observability import AdminAnswer, AdminQuery
from trouper.observability._config import admin_name
from trouper.runtime import fail_actor

COOKIE = b"admin-everywhere-cookie"
TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class Worker(trouper.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


@asynccontextmanager
async def one_admin() -> AsyncIterator[tuple[trouper.Node, trouper.Node, httpx.AsyncClient]]:
    """n0 serves HTTP with a token; n1 only joins the cluster."""
    async with (
        trouper.open_node(
            "n0", listen="tcp://127.0.0.1:0", cookie=COOKIE, admin="127.0.0.1:0", admin_token=TOKEN
        ) as a,
        trouper.open_node("n1", listen="tcp://127.0.0.1:0", seeds=a.addresses, cookie=COOKIE) as b,
    ):
        await a.wait_for_members(2, timeout=10)
        await b.wait_for_members(2, timeout=10)
        assert b.admin_address is None  # no second HTTP server
        async with httpx.AsyncClient(base_url=f"http://{a.admin_address}") as http:
            yield a, b, http


async def poll(http: httpx.AsyncClient, url: str, ok: Any) -> dict[str, Any]:
    """GET ``url`` until ``ok(body)``; the caller's fail_after bounds it."""
    while True:
        reply = await http.get(url)
        if reply.status_code == 200 and ok(body := reply.json()):
            return body
        await trio.sleep(0.02)


def paths(entry: dict[str, Any]) -> set[str]:
    found = {entry["path"]}
    for child in entry["children"]:
        found |= paths(child)
    return found


async def test_a_node_without_an_endpoint_answers_through_another_nodes_endpoint() -> None:
    with trio.fail_after(30):
        async with one_admin() as (_, b, http):
            ref = await b.spawn(Worker, name="w")
            # n1's name reaches n0 with the registry gossip: poll, then read.
            node = await poll(http, "/api/node?node=n1", lambda body: body["node"] == "n1")
            assert node["admin"] is None  # n1 serves no HTTP
            tree = await poll(
                http, "/api/tree?node=n1", lambda body: "/user/w" in paths(body["roots"][0])
            )
            assert tree["node"] == "n1"
            everything = set().union(*(paths(root) for root in tree["roots"]))
            assert "/system/observer" in everything and "/system/admin" not in everything
            members = (await http.get("/api/cluster")).json()["members"]
            assert {m["node"]: m["admin"] for m in members} == {"n0": True, "n1": True}

            # An action travels through the cluster and acts on n1.
            unauthorised = await http.post("/api/actors/user/w/kill?node=n1")
            assert unauthorised.status_code in (401, 403)
            killed = await http.post("/api/actors/user/w/kill?node=n1", headers=AUTH)
            assert killed.status_code == 202 and killed.json()["node"] == "n1"
            await poll(
                http,
                "/api/actors/user/w?node=n1",
                lambda body: body["restarts"] == 1 and body["state"] == "running",
            )
            assert (await http.get("/api/actors/user/w?node=n1")).json()["uid"] == ref.uid
            # The agent cannot be told to stop itself (it would wait on itself).
            itself = await http.post("/api/actors/system/observer/stop?node=n1", headers=AUTH)
            assert itself.status_code == 403
            stopped = await http.post("/api/actors/user/w/stop?node=n1", headers=AUTH)
            assert stopped.status_code == 200
            assert b.kernel.cell_at("/user/w") is None

            # n1's dead letters are collected on n1 without an endpoint.
            await ref.tell("after the end")
            letters = await poll(
                http, "/api/deadletters?node=n1", lambda body: len(body["recent"]) >= 1
            )
            assert letters["recent"][0]["recipient"].endswith("/user/w")
            metrics = await http.get("/metrics?node=n1")
            assert metrics.status_code == 200
            assert 'trouper_cluster_members{status="up"} 2.0' in metrics.text


async def test_a_restarted_agent_keeps_answering_and_a_lone_node_runs_none() -> None:
    with trio.fail_after(30):
        async with one_admin() as (a, b, http):
            node = await poll(http, "/api/node?node=n0", lambda body: body["node"] == "n0")
            assert node["admin"] == f"http://{a.admin_address}"
            await poll(http, "/api/node?node=n1", lambda body: body["node"] == "n1")
            # No action reaches an agent, through the cluster or not.
            for node_id in ("n0", "n1"):
                url = f"/api/actors/system/observer/kill?node={node_id}"
                assert (await http.post(url, headers=AUTH)).status_code == 403
            # A failed agent is restarted by its supervisor and answers again.
            observer = b.kernel.cell_at("/system/observer")
            assert observer is not None
            fail_actor(observer, RuntimeError("the agent failed"))
            body = await poll(
                http, "/api/actors/system/observer?node=n1", lambda body: body["restarts"] == 1
            )
            assert body["state"] == "running"
            tree = await poll(http, "/api/tree?node=n1", lambda body: body["node"] == "n1")
            assert tree["roots"]
            # With its endpoint closed, n0 still answers n1 (an ask, no HTTP),
            # and no longer names a URL nobody serves.
            await a.admin.aclose()
            agent = await b.lookup(admin_name("n0"), timeout=5)
            reply = await agent.ask(AdminQuery("node"), timeout=5)
            assert isinstance(reply, AdminAnswer) and reply.status == 200
            about = json.loads(reply.body)
            assert about["node"] == "n0" and about["admin"] is None
        async with trouper.open_node("alone") as lone:
            assert lone.kernel.cell_at("/system/observer") is None
