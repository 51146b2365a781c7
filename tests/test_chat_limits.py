"""The chat's limits over real WebSockets: rooms per connection and per node,
each refused with an error frame naming the limit; idle rooms passivate and
reload their history from the store on the next join."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from random import Random
from typing import Any

import pytest
import trio
from examples.chat._server import ChatSettings, RoomDirectory, gateway_config
from trio_websocket import WebSocketConnection, open_websocket_url

import trouper
from trouper.web import open_gateway

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")


@asynccontextmanager
async def chat_server(
    store_url: str, settings: ChatSettings | None = None, **directory: Any
) -> AsyncIterator[tuple[trouper.Node, str]]:
    async with trouper.open_node() as node:
        rooms = await node.spawn(RoomDirectory, store_url, name="chat-rooms", **directory)
        config = gateway_config(rooms, settings=settings or ChatSettings())
        async with open_gateway(node, config) as gateway:
            yield node, gateway.ws_url


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.get_message())
    return frame


async def send(ws: WebSocketConnection, **frame: Any) -> None:
    await ws.send_message(json.dumps(frame))


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


FLOOD = 10_000


@linux_only
async def test_a_10000_room_flood_on_one_connection_is_refused_at_the_limit(
    tmp_path: Path,
) -> None:
    # The server runs in this process: its RSS and file descriptors are ours.
    with trio.fail_after(120):
        async with (
            chat_server(f"sqlite:///{tmp_path}/chat.db") as (node, url),
            open_websocket_url(url) as ws,
        ):
            await send(ws, type="join", room="warm-up", user="ada")  # opens the store
            assert (await recv(ws))["type"] == "joined"
            await send(ws, type="leave", room="warm-up")
            fds, rss = open_fds(), rss_bytes()
            counts: dict[str, int] = {}
            reasons: set[str] = set()

            # At most 128 answers outstanding: the server's outbox holds 256,
            # and a client that leaves it full for 5 s is cut off as too slow
            # (trio-websocket parses frames slower than the server makes them).
            window = trio.Semaphore(128)

            async def flood() -> None:
                for i in range(FLOOD):
                    await window.acquire()
                    await send(ws, type="join", room=f"flood-{i}", user="ada")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                for _ in range(FLOOD):
                    frame = await recv(ws)
                    window.release()
                    code = frame.get("code", frame["type"])
                    counts[code] = counts.get(code, 0) + 1
                    if code == "room_limit":
                        reasons.add(frame["reason"])
                        assert frame["room"].startswith("flood-")
            assert counts == {"joined": 20, "room_limit": FLOOD - 20}
            assert reasons == {
                "room limit: a connection may be in at most 20 rooms; leave one first"
            }
            # Refused before any room was created: 21 rooms (warm-up included).
            directory = await node.lookup("chat-rooms")
            assert len(trouper.runtime.child_cells(trouper.runtime.cell_of(directory))) == 21
            # Measured on the development machine: the flood grows RSS by about
            # 0.1 MiB; with the limit lifted, its 10,000 rooms grow it by 50 MiB.
            grown = rss_bytes() - rss
            assert grown < 10 * 1024 * 1024, f"RSS grew by {grown / 2**20:.1f} MiB"
            assert open_fds() - fds < 5, (fds, open_fds())
            # The connection is still usable: leave one, join another.
            await send(ws, type="leave", room="flood-0")
            await send(ws, type="join", room="one-more", user="ada")
            assert (await recv(ws))["room"] == "one-more"


async def test_the_rooms_per_node_limit_refuses_a_new_room_and_frees_on_passivation() -> None:
    settings = ChatSettings(idle_timeout=60)
    with trio.fail_after(30):
        async with (
            chat_server("memory://node-limit", settings, max_rooms=3, passivate_after=0.2) as (
                _node,
                url,
            ),
            open_websocket_url(url) as ada,
        ):
            for room in ("a", "b", "c"):
                await send(ada, type="join", room=room, user="ada")
                assert (await recv(ada))["type"] == "joined"
            await send(ada, type="join", room="d", user="ada")
            error = await recv(ada)
            assert error["code"] == "room_limit" and error["room"] == "d"
            assert "this node hosts 3 rooms, its limit (--max-rooms)" in error["reason"]
            await send(ada, type="say", room="d", text="hi")  # the refused join left nothing
            assert (await recv(ada))["code"] == "not_joined"
            await send(ada, type="leave", room="a")  # room a passivates once empty
            while True:
                await send(ada, type="join", room="d", user="ada")
                frame = await recv(ada)
                if frame["type"] == "joined":
                    break
                assert frame["code"] == "room_limit"
                await trio.sleep(0.05)  # polling until room a stops (deadline above)
            assert frame["room"] == "d"


async def test_an_idle_room_passivates_and_reloads_its_history(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/chat.db"
    with trio.fail_after(30):
        async with chat_server(store, passivate_after=0.2) as (node, url):
            async with open_websocket_url(url) as ws:
                await send(ws, type="join", room="quiet", user="ada")
                await recv(ws)
                await send(ws, type="say", room="quiet", text="before the nap", seq=1)
                first = await recv(ws)
                room = await node.lookup("room:quiet")
                await send(ws, type="leave", room="quiet")
            while True:  # the room stops once it has had no members for 0.2 s
                try:
                    await node.lookup("room:quiet")
                except trouper.ActorNotFound:
                    break
                await trio.sleep(0.05)
            shared = await node.store(store)
            assert await shared.get("chat/owner/quiet") is None  # claim given up
            async with open_websocket_url(url) as ws:
                await send(ws, type="join", room="quiet", user="bo")
                joined = await recv(ws)
                assert [m["text"] for m in joined["history"]] == ["before the nap"]
                assert joined["history"][0]["id"] == first["id"]
                assert await node.lookup("room:quiet") != room  # a new incarnation
                await send(ws, type="say", room="quiet", text="after")
                assert (await recv(ws))["id"] == first["id"] + 1


async def test_a_room_with_members_does_not_passivate() -> None:
    with trio.fail_after(20):
        async with (
            chat_server("memory://busy", passivate_after=0.1) as (node, url),
            open_websocket_url(url) as ws,
        ):
            await send(ws, type="join", room="busy", user="ada")
            await recv(ws)
            room = await node.lookup("room:busy")
            with trio.move_on_after(0.5):  # five passivation periods
                await trio.sleep_forever()
            assert await node.lookup("room:busy") == room
            await send(ws, type="say", room="busy", text="still here")
            assert (await recv(ws))["text"] == "still here"


async def test_joins_racing_a_passivating_room_all_succeed(tmp_path: Path) -> None:
    # With a 10 ms quiet period, leaving and joining again keeps meeting a
    # room that is stopping: the join waits for its successor, never fails.
    with trio.fail_after(60):
        async with (
            chat_server(f"sqlite:///{tmp_path}/chat.db", passivate_after=0.01) as (node, url),
            open_websocket_url(url) as ws,
        ):
            random = Random(14)
            texts = []
            incarnations = set()
            for i in range(40):
                await send(ws, type="join", room="flicker", user="ada")
                joined = await recv(ws)
                assert joined["type"] == "joined", joined
                texts = [m["text"] for m in joined["history"]]
                incarnations.add(await node.lookup("room:flicker"))
                await send(ws, type="say", room="flicker", text=f"m{i}", seq=i + 1)
                assert (await recv(ws))["text"] == f"m{i}"
                await send(ws, type="leave", room="flicker")
                # Join again around the moment the room stops (deadline above).
                await trio.sleep(random.uniform(0.005, 0.03))
            assert texts == [f"m{i}" for i in range(39)]  # nothing lost across the reloads
            assert len(incarnations) > 10  # the room did passivate, again and again
