"""Who is who in the chat: names claimed per room (one admin per room), a
reconnect reclaiming its name (also from a half-dead session), JWT mode with
impersonation refused, development mode said plainly, and acknowledged
messages resent across a reconnect without being stored twice."""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from examples.chat._auth import issue_token
from examples.chat._server import ChatSettings, RoomDirectory, gateway_config
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    connect_websocket_url,
    open_websocket_url,
)

import trouper
from trouper.web import open_gateway

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"a-test-secret-of-at-least-32-bytes!!"


@asynccontextmanager
async def chat_server(settings: ChatSettings | None = None) -> AsyncIterator[str]:
    store = f"memory://identity-{uuid.uuid4().hex}"  # a store of its own for each test
    async with trouper.open_node() as node:
        rooms = await node.spawn(RoomDirectory, store, name="chat-rooms")
        config = gateway_config(rooms, settings=settings or ChatSettings())
        async with open_gateway(node, config) as gateway:
            yield gateway.ws_url


async def recv(ws: WebSocketConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.get_message())
    return frame


async def send(ws: WebSocketConnection, **frame: Any) -> None:
    await ws.send_message(json.dumps(frame))


async def join_until_accepted(
    nursery: trio.Nursery, url: str, room: str, user: str
) -> tuple[WebSocketConnection, int]:
    """Join on new connections until one is accepted; how many were refused."""
    refused = 0
    while True:
        ws = await connect_websocket_url(nursery, url)
        await send(ws, type="join", room=room, user=user)
        frame = await recv(ws)
        if frame["type"] == "joined":
            return ws, refused
        assert frame["code"] == "name_taken", frame
        refused += 1
        await ws.aclose()
        await trio.sleep(0.05)  # polling the claim (under trio.fail_after)


@pytest.mark.parametrize("second", ["admin", "Admin", "ADMIN ", "ａｄｍｉｎ"])  # noqa: RUF001
async def test_a_room_has_at_most_one_admin(second: str) -> None:
    # Before, a room kept one name per session: two sessions could both join
    # as "admin" (or as "Admin") and both post as the admin.
    with trio.fail_after(20):
        async with (
            chat_server() as url,
            open_websocket_url(url) as first,
            open_websocket_url(url) as other,
        ):
            await send(first, type="join", room="ops", user="admin")
            assert (await recv(first))["members"] == ["admin"]
            await send(other, type="join", room="ops", user=second)
            error = await recv(other)
            assert error == {
                "type": "error",
                "reason": f"the name {second!r} is taken in room 'ops'",
                "code": "name_taken",
                "room": "ops",
            }
            await send(other, type="say", room="ops", text="I am the admin")
            assert (await recv(other))["code"] == "not_joined"
            await send(other, type="join", room="elsewhere", user=second)  # per room
            assert (await recv(other))["type"] == "joined"
            await send(first, type="say", room="ops", text="only me")
            assert (await recv(first))["user"] == "admin"


async def test_a_reconnect_reclaims_its_name_once_the_old_session_closed() -> None:
    with trio.fail_after(20):
        async with chat_server() as url, trio.open_nursery() as nursery:
            old = await connect_websocket_url(nursery, url)
            await send(old, type="join", room="lobby", user="ada")
            await recv(old)
            async with open_websocket_url(url) as thief:
                await send(thief, type="join", room="lobby", user="ada")
                assert (await recv(thief))["code"] == "name_taken"
            await old.aclose()
            new, _ = await join_until_accepted(nursery, url, "lobby", "ada")
            await new.aclose()


async def test_a_half_dead_session_frees_its_name_after_the_idle_timeout() -> None:
    with trio.fail_after(20):
        async with (
            chat_server(ChatSettings(idle_timeout=0.5)) as url,
            trio.open_nursery() as n,
            open_websocket_url(url) as silent,
        ):
            await send(silent, type="hello")  # a page: it promises pings
            welcome = await recv(silent)
            assert welcome["limits"]["ping_interval"] == pytest.approx(0.5 / 3)
            await send(silent, type="join", room="lobby", user="ada")
            await recv(silent)
            # It now sends nothing (its network died without a FIN).
            new, refused = await join_until_accepted(n, url, "lobby", "ada")
            assert refused >= 1  # refused while the old session lived
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await silent.get_message()
            assert info.value.reason.code == 1001 and info.value.reason.reason == "idle"
            await new.aclose()


async def test_pings_keep_a_quiet_page_connected() -> None:
    with trio.fail_after(20):
        async with (
            chat_server(ChatSettings(idle_timeout=0.3)) as url,
            open_websocket_url(url) as ws,
        ):
            await send(ws, type="hello")
            await recv(ws)
            await send(ws, type="join", room="lobby", user="ada")
            await recv(ws)
            for _ in range(10):  # 1 s: over three idle timeouts
                await send(ws, type="ping")
                await trio.sleep(0.1)
            await send(ws, type="say", room="lobby", text="still here")
            assert (await recv(ws))["text"] == "still here"


async def test_development_mode_says_names_are_unauthenticated() -> None:
    with trio.fail_after(20):
        async with chat_server() as url, open_websocket_url(url) as ws:
            await send(ws, type="hello")
            welcome = await recv(ws)
            assert welcome["auth"] == "none" and welcome["user"] is None
            assert welcome["limits"]["max_text_bytes"] == 4096
            assert welcome["limits"]["max_rooms"] == 20


def _token(claims: dict[str, Any], secret: bytes | None = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "a token is required"),
        ("?token=not-a-jwt", "invalid token"),
        (
            f"?token={_token({'sub': 'ada'}, b'another-secret-of-at-least-32-bytes')}",
            "invalid token",
        ),
        (f"?token={_token({'sub': 'ada', 'exp': int(time.time()) - 60})}", "expired"),
        (f"?token={_token({'sub': 'ada'}, None, 'none')}", "invalid token"),
        (f"?token={_token({'role': 'admin'})}", "names no user"),
    ],
)
async def test_jwt_mode_refuses_a_connection_without_a_valid_token(query: str, reason: str) -> None:
    with trio.fail_after(20):
        async with (
            chat_server(ChatSettings(jwt_secret=SECRET)) as url,
            open_websocket_url(url + query) as ws,
        ):
            with contextlib.suppress(ConnectionClosed):  # it may be closed already
                await send(ws, type="join", room="lobby", user="mallory")
            error = await recv(ws)
            assert error["code"] == "unauthorized" and reason in error["reason"]
            with pytest.raises(ConnectionClosed) as info:
                await ws.get_message()
            assert info.value.reason.code == 1008


async def test_jwt_mode_takes_the_name_from_the_token_and_refuses_impersonation() -> None:
    token = issue_token("ada", SECRET)
    with trio.fail_after(20):
        async with (
            chat_server(ChatSettings(jwt_secret=SECRET)) as url,
            open_websocket_url(f"{url}?token={token}") as ws,
        ):
            await send(ws, type="hello")
            welcome = await recv(ws)
            assert (welcome["auth"], welcome["user"]) == ("jwt", "ada")
            for someone_else in ("bo", "admin", "ada2"):
                await send(ws, type="join", room="lobby", user=someone_else)
                error = await recv(ws)
                assert error["code"] == "forbidden" and error["room"] == "lobby"
                assert (
                    f"you are 'ada' (your token): you cannot join as {someone_else!r}"
                    in (error["reason"])
                )
            await send(ws, type="join", room="lobby", user="Ada")  # the token's name wins
            assert (await recv(ws))["members"] == ["ada"]
            await send(ws, type="say", room="lobby", text="signed")
            assert (await recv(ws))["user"] == "ada"


async def test_the_token_command_prints_a_token_the_server_accepts(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    with trio.fail_after(30):
        done = await trio.run_process(
            [
                sys.executable,
                "-m",
                "examples.chat",
                "token",
                "bo",
                "--jwt-secret-file",
                secret_file,
            ],
            cwd=ROOT,
            capture_stdout=True,
        )
        token = done.stdout.decode().strip()
        assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == "bo"
        async with (
            chat_server(ChatSettings(jwt_secret=SECRET)) as url,
            open_websocket_url(f"{url}?token={token}") as ws,
        ):
            await send(ws, type="join", room="lobby", user="bo")
            assert (await recv(ws))["type"] == "joined"


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"short")
    done = subprocess.run(
        [sys.executable, "-m", "examples.chat", "token", "bo", "--jwt-secret-file", secret_file],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode != 0 and b"at least 32 bytes" in done.stderr


async def test_a_message_resent_after_a_reconnect_is_stored_and_shown_once() -> None:
    with trio.fail_after(20):
        async with (
            chat_server() as url,
            trio.open_nursery() as nursery,
            open_websocket_url(url) as bo,
        ):
            await send(bo, type="join", room="lobby", user="bo")
            await recv(bo)
            ada = await connect_websocket_url(nursery, url)
            await send(ada, type="join", room="lobby", user="ada")
            await recv(ada)
            assert (await recv(bo))["status"] == "online"
            await send(ada, type="say", room="lobby", text="typed once", seq=7)
            echo = await recv(ada)
            assert (echo["text"], echo["seq"]) == ("typed once", 7)
            await ada.aclose()  # the echo was lost with the connection, as far as the page knows
            assert (await recv(bo))["id"] == echo["id"]
            assert (await recv(bo))["status"] == "offline"
            ada, _ = await join_until_accepted(nursery, url, "lobby", "ada")
            assert (await recv(bo))["status"] == "online"
            await send(ada, type="say", room="lobby", text="typed once", seq=7)  # the resend
            again = await recv(ada)
            assert (again["id"], again["seq"]) == (echo["id"], 7)  # the first one, not a new one
            await send(ada, type="say", room="lobby", text="next", seq=8)
            assert (await recv(ada))["id"] == echo["id"] + 1
            await send(ada, type="join", room="lobby", user="ada")
            history = [m["text"] for m in (await recv(ada))["history"]]
            assert history == ["typed once", "next"]
            await ada.aclose()


async def test_the_server_log_says_development_mode(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "examples.chat", "--http", "127.0.0.1:0"]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            run = functools.partial(
                trio.run_process,
                [*command, "--store", "memory://log"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                check=False,
            )
            process: trio.Process = await nursery.start(run)
            assert process.stdout is not None
            output = b""
            while b"chat: open" not in output:
                chunk = await process.stdout.receive_some()
                assert chunk, output
                output += chunk
            process.terminate()
        assert b"development mode: user names are NOT authenticated" in output


async def test_a_reconnecting_page_takes_its_name_back_at_once() -> None:
    # The idle timeout is long: only the resume secret can free the name now.
    with trio.fail_after(20):
        async with (
            chat_server(ChatSettings(idle_timeout=60)) as url,
            open_websocket_url(url) as bo,
            open_websocket_url(url) as old,
            open_websocket_url(url) as thief,
            open_websocket_url(url) as new,
        ):
            await send(bo, type="join", room="lobby", user="bo")
            await recv(bo)
            await send(old, type="hello")
            await recv(old)
            await send(old, type="join", room="lobby", user="ada", resume="tab-1-secret")
            await recv(old)
            assert (await recv(bo))["status"] == "online"
            # The old connection now looks alive but says nothing (half-dead).
            for resume in ("", "tab-2-secret"):
                await send(thief, type="join", room="lobby", user="ada", resume=resume)
                assert (await recv(thief))["code"] == "name_taken"
            await send(new, type="join", room="lobby", user="ada", resume="tab-1-secret")
            assert (await recv(new))["members"] == ["ada", "bo"]
            replaced = await recv(old)
            assert (replaced["code"], replaced["room"]) == ("replaced", "lobby")
            await send(old, type="say", room="lobby", text="from the old one")
            assert (await recv(old))["code"] == "not_joined"
            await send(new, type="say", room="lobby", text="back")
            # bo saw no "offline" and "online" in between: ada never left.
            assert (await recv(bo))["text"] == "back"
            await send(thief, type="join", room="lobby", user="ada", resume="tab-1-secret")
            assert (await recv(thief))["type"] == "joined"  # the secret is what counts
