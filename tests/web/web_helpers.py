"""Shared pieces of the web gateway tests: a recorder, sessions, a raw HTTP client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

import trouper
from trouper.web import WebSocketConnection, WebSocketSession


class Recorder:
    """What sessions report (connect, disconnect, stop...), awaitable."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._changed = trio.Event()

    def add(self, *event: Any) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == kind]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()


class Echo(WebSocketSession):
    """Echoes text; ``boom`` raises; ``close:<reason>`` closes with 4000."""

    def __init__(self, connection: WebSocketConnection, rec: Recorder) -> None:
        super().__init__(connection)
        self.rec = rec

    async def on_connect(self) -> None:
        self.rec.add("connect", self.ctx.self_ref)

    async def on_text(self, text: str) -> None:
        if text == "boom":
            raise RuntimeError("boom")
        if text.startswith("close:"):
            self.send_text("last words")
            await self.close(4000, text[len("close:") :])
            return
        self.send_text(text)

    async def on_bytes(self, data: bytes) -> None:
        self.send_bytes(data[::-1])

    async def on_disconnect(self, code: int) -> None:
        self.rec.add("disconnect", self.ctx.self_ref, code)


async def wait_actors(node: trouper.Node, count: int) -> None:
    """Wait until the node counts ``count`` live actors."""
    while node.stats().actors != count:  # noqa: ASYNC110 - a counter, not an event
        await trio.sleep(0.01)


async def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A GET with the path sent byte for byte (no client-side normalization)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]
