"""The chat on a two-node cluster of real processes: users on different nodes
share a room, and the room survives a ``kill -9`` of the node hosting it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

ROOT = Path(__file__).resolve().parent.parent
FAST_FAILURE = ["--heartbeat-interval", "0.2", "--acceptable-pause", "1.0", "--down-after", "2.5"]


class ChatNode:
    def __init__(self, process: trio.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.ws_url = ""
        self.cluster_address = ""
        self._buffer = b""

    async def readline(self) -> str:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some()
            if not chunk:
                raise AssertionError(f"chat node exited early:\n{self.log.read_text()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def started(self) -> None:
        while True:
            line = await self.readline()
            if found := re.search(r"listens on (\S+)", line):
                self.cluster_address = found.group(1)
            if found := re.match(r"chat: open (http://\S+?)/? ", line):
                self.ws_url = found.group(1).replace("http://", "ws://") + "/ws"
                return


@asynccontextmanager
async def chat_node(tmp_path: Path, tag: str, *extra: str) -> AsyncIterator[ChatNode]:
    cookie = tmp_path / "cookie"
    if not cookie.exists():
        cookie.write_text("chat-cluster-secret\n")
        cookie.chmod(0o600)
    log = tmp_path / f"{tag}.log"
    command = [
        sys.executable,
        "-m",
        "examples.chat",
        "--http",
        "127.0.0.1:0",
        "--listen",
        "tcp://127.0.0.1:0",
        "--cookie-file",
        str(cookie),
        "--store",
        f"sqlite:///{tmp_path}/chat.db",
        *FAST_FAILURE,
        *extra,
    ]
    with log.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT
        )
    try:
        node = ChatNode(process, log)
        await node.started()
        yield node
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


class Client:
    """A WebSocket client that keeps every frame it got."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send_message(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await self.ws.get_message())
        self.frames.append(frame)
        return frame

    async def until(self, **match: Any) -> dict[str, Any]:
        """The next frame with these fields (earlier ones are kept in ``frames``)."""
        while True:
            frame = await self.recv()
            if all(frame.get(k) == v for k, v in match.items()):
                return frame


@asynccontextmanager
async def client(url: str) -> AsyncIterator[Client]:
    async with open_websocket_url(url) as ws:
        yield Client(ws)


async def share_a_room_then_kill_a(a: ChatNode, bo: Client) -> list[int]:
    """ada on a and bo on b chat in room "r" (which lives on a); then a dies."""
    async with client(a.ws_url) as ada:
        await ada.send(type="join", room="r", user="ada")  # first: the room lives on a
        assert await ada.recv() == {
            "type": "joined",
            "room": "r",
            "history": [],
            "members": ["ada"],
        }
        await bo.send(type="join", room="r", user="bo")
        joined = await bo.recv()
        assert joined["type"] == "joined" and joined["members"] == ["ada", "bo"]
        assert await ada.recv() == {
            "type": "presence",
            "room": "r",
            "user": "bo",
            "status": "online",
        }
        # One after the other: two says racing from two nodes may reach the
        # room in either order, and the test asserts the order of ids.
        await ada.send(type="say", room="r", text="hello from a")
        first = await ada.until(type="message", text="hello from a")
        assert await bo.until(type="message", text="hello from a") == first
        await bo.send(type="say", room="r", text="hello from b")
        second = await bo.until(type="message", text="hello from b")
        assert await ada.until(type="message", text="hello from b") == second
        assert second["id"] > first["id"]
        a.process.kill()  # kill -9 the node hosting the room
        await a.process.wait()
    return [first["id"], second["id"]]


async def test_room_shared_across_nodes_survives_a_kill_of_its_node(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(chat_node(tmp_path, "a"))
            b = await stack.enter_async_context(
                chat_node(tmp_path, "b", "--seed", a.cluster_address)
            )
            async with client(b.ws_url) as bo:
                ids = await share_a_room_then_kill_a(a, bo)

                # bo keeps its socket: what it says after the crash arrives,
                # perhaps after "unavailable, retry" errors while a's death
                # is being noticed, never lost in silence.
                after = None
                for _ in range(50):
                    await bo.send(type="say", room="r", text="after the crash")
                    with trio.move_on_after(2):
                        while True:
                            frame = await bo.recv()
                            if frame["type"] == "error":
                                assert "unavailable" in frame["reason"]
                                break
                            if frame.get("text") == "after the crash":
                                after = frame
                                break
                    if after is not None:
                        break
                    await trio.sleep(0.2)
                assert after is not None and after["user"] == "bo"
                assert after["id"] > max(ids)

                # A newcomer on b sees the history from before the crash, and
                # bo (who re-entered the re-created room) but not ada.
                async with client(b.ws_url) as cy:
                    await cy.send(type="join", room="r", user="cy")
                    joined = await cy.until(type="joined")
                    texts = [(m["user"], m["text"]) for m in joined["history"]]
                    assert texts == [
                        ("ada", "hello from a"),
                        ("bo", "hello from b"),
                        ("bo", "after the crash"),
                    ]
                    assert [m["id"] for m in joined["history"]] == [*ids, after["id"]]
                    assert joined["members"] == ["bo", "cy"]
                    await bo.until(type="presence", user="cy", status="online")
                    # ada never came back: everyone still there hears she left.
                    for c in (bo, cy):
                        if not any(
                            f.get("user") == "ada" and f.get("status") == "offline"
                            for f in c.frames
                        ):
                            await c.until(type="presence", user="ada", status="offline")
                    assert not any(
                        f.get("type") == "presence" and f.get("user") == "bo" for f in bo.frames
                    )
