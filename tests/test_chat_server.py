"""The chat server over real WebSockets on 127.0.0.1: every protocol rule,
and history across a restart of the node."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from examples.chat._server import RoomDirectory, gateway_config
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

import trouper
from trouper.web import open_gateway


@asynccontextmanager
async def chat_server(store_url: str) -> AsyncIterator[str]:
    async with trouper.open_node() as node:
        directory = await node.spawn(RoomDirectory, store_url, name="chat-rooms")
        async with open_gateway(node, gateway_config(directory)) as gateway:
            yield gateway.ws_url


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.get_message())
    return frame


async def send(ws: WebSocketConnection, **frame: Any) -> None:
    await ws.send_message(json.dumps(frame))


async def test_join_say_presence_and_leave(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with (
            chat_server(f"sqlite:///{tmp_path}/chat.db") as url,
            open_websocket_url(url) as ada,
            open_websocket_url(url) as bo,
        ):
            await send(ada, type="join", room="lobby", user="ada")
            assert await recv(ada) == {
                "type": "joined",
                "room": "lobby",
                "history": [],
                "members": ["ada"],
            }
            await send(bo, type="join", room="lobby", user="bo")
            joined = await recv(bo)
            assert joined["members"] == ["ada", "bo"]
            assert await recv(ada) == {
                "type": "presence",
                "room": "lobby",
                "user": "bo",
                "status": "online",
            }
            await send(ada, type="say", room="lobby", text="hello")
            await send(bo, type="say", room="lobby", text="hi")
            for ws in (ada, bo):  # every member, the sender included, in order
                first, second = await recv(ws), await recv(ws)
                assert (first["type"], first["user"], first["text"]) == ("message", "ada", "hello")
                assert (second["user"], second["text"]) == ("bo", "hi")
                assert second["id"] > first["id"] and isinstance(first["ts"], float)
            await send(bo, type="leave", room="lobby")
            assert (await recv(ada))["status"] == "offline"


async def test_a_closed_socket_leaves_every_room(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with chat_server("memory://closed-socket") as url, open_websocket_url(url) as ada:
            await send(ada, type="join", room="a", user="ada")
            await send(ada, type="join", room="b", user="ada")
            await recv(ada)
            await recv(ada)
            async with open_websocket_url(url) as bo:
                for room in ("a", "b"):
                    await send(bo, type="join", room=room, user="bo")
                    await recv(bo)
                    assert (await recv(ada))["status"] == "online"
            seen = {(f["room"], f["status"]) for f in [await recv(ada), await recv(ada)]}
            assert seen == {("a", "offline"), ("b", "offline")}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("this is not json", "not JSON"),
        ('{"type":"dance"}', "invalid message"),
        ('{"type":"join","room":"r"}', "invalid message"),
        ('{"type":"say","room":"r","text":42}', "invalid message"),
        ('{"type":"say","room":"elsewhere","text":"hi"}', "not in room"),
        ('{"type":"leave","room":"elsewhere"}', "not in room"),
        (json.dumps({"type": "say", "room": "lobby", "text": "x" * 4097}), "over 4096"),
    ],
)
async def test_bad_input_gets_an_error_and_the_connection_stays(frame: str, reason: str) -> None:
    with trio.fail_after(20):
        async with chat_server("memory://bad-input") as url, open_websocket_url(url) as ws:
            await send(ws, type="join", room="lobby", user="ada")
            history = (await recv(ws))["history"]
            await ws.send_message(frame)
            error = await recv(ws)
            assert error["type"] == "error" and reason in error["reason"]
            await send(ws, type="say", room="lobby", text="still here")
            message = await recv(ws)
            assert message["text"] == "still here"
            # nothing from the bad frame was stored
            await send(ws, type="join", room="lobby", user="ada")
            assert len((await recv(ws))["history"]) == len(history) + 1


async def test_oversize_frame_closes_with_1009() -> None:
    with trio.fail_after(20):
        async with chat_server("memory://oversize") as url, open_websocket_url(url) as ws:
            await ws.send_message("x" * (65 * 1024))
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason.code == 1009


async def test_history_survives_a_restart_and_ids_increase(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/chat.db"
    with trio.fail_after(30):
        async with chat_server(store) as url, open_websocket_url(url) as ws:
            await send(ws, type="join", room="r", user="ada")
            await recv(ws)
            for i in range(105):
                await send(ws, type="say", room="r", text=f"m{i}")
                await recv(ws)
        async with chat_server(store) as url, open_websocket_url(url) as ws:
            await send(ws, type="join", room="r", user="bo")
            history = (await recv(ws))["history"]
            assert [m["text"] for m in history] == [f"m{i}" for i in range(5, 105)]
            assert [m["id"] for m in history] == list(range(6, 106))
            await send(ws, type="say", room="r", text="after")
            assert (await recv(ws))["id"] == 106


async def test_the_page_is_served() -> None:
    with trio.fail_after(20):
        async with chat_server("memory://page") as url:
            base = url.replace("ws://", "http://").rsplit("/", 1)[0]
            async with httpx.AsyncClient() as client:
                page = await client.get(base + "/")
                health = await client.get(base + "/healthz")
            assert page.status_code == 200 and "trouper chat" in page.text
            assert page.headers["content-type"].startswith("text/html")
            assert health.status_code == 200
