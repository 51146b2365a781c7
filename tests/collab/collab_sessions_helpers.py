"""Shared pieces of the session service tests: store URLs, a watcher actor,
raw views of the indexes (Redis commands on the prefixed keys, or the
trouper store's keys), and a deadline-bounded poll."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
import trio
from examples.collab.sessions._redis_store import redis_prefix

import trouper
import trouper.pools
from trouper.stores import open_store


def url_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if kind == "postgres":  # through trouper's store interface, like sqlite
        url = str(request.getfixturevalue("postgres_url"))
        return url.replace("postgresql://", "postgres://", 1)
    if kind == "memory":
        return f"memory://sessions-{uuid.uuid4().hex}"
    return f"sqlite:///{tmp_path}/sessions.db"


class Watch(msgspec.Struct, frozen=True):
    ref: trouper.ActorRef


class Watcher(trouper.Actor):
    """Watches refs; ``ended`` gets each ``Terminated``."""

    def __init__(self, ended: trio.MemorySendChannel[trouper.Terminated]) -> None:
        self.ended = ended

    @trouper.handler
    async def watch(self, msg: Watch) -> None:
        self.ctx.watch(msg.ref)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        self.ended.send_nowait(msg)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds (for effects of wall-clock TTLs)."""
    with trio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - a store's wall-clock TTL, not an event
            await trio.sleep(0.05)


class Indexes:
    """What the store holds about sessions, read without the service."""

    def __init__(self, url: str, raw: object) -> None:
        self.url = url
        self.raw = raw
        self.redis = url.startswith("redis://")

    async def record_exists(self, session_id: str) -> bool:
        if self.redis:
            key = f"{redis_prefix(self.url)}session:{session_id}"
            return bool(await self.raw.execute("EXISTS", key))  # type: ignore[attr-defined]
        return await self.raw.get(f"session:{session_id}") is not None  # type: ignore[attr-defined]

    async def in_set(self, name: str, session_id: str) -> bool:
        if self.redis:
            key = f"{redis_prefix(self.url)}{name}"
            members = await self.raw.execute("SMEMBERS", key)  # type: ignore[attr-defined]
            return session_id.encode() in set(members)
        raw = await self.raw.get(name)  # type: ignore[attr-defined]
        return raw is not None and session_id in msgspec.json.decode(raw)

    async def active(self, session_id: str) -> bool:
        if self.redis:
            key = f"{redis_prefix(self.url)}sessions:active"
            score = await self.raw.execute("ZSCORE", key, session_id)  # type: ignore[attr-defined]
            return score is not None
        for n in range(16):
            raw = await self.raw.get(f"sessions:active:{n}")  # type: ignore[attr-defined]
            if raw is not None and session_id in msgspec.json.decode(raw):
                return True
        return False

    async def anywhere(self, session_id: str, user: str, conn: str) -> list[str]:
        """Where the session still is: [] once it is cleaned up everywhere."""
        places = []
        if await self.record_exists(session_id):
            places.append("session")
        if await self.in_set(f"sessions:user:{user}", session_id):
            places.append("user index")
        if await self.in_set(f"sessions:conn:{conn}", session_id):
            places.append("connection index")
        if await self.active(session_id):
            places.append("active")
        return places


@asynccontextmanager
async def open_indexes(url: str) -> AsyncIterator[Indexes]:
    """Raw access: a Redis pool of the test's own, or the same trouper store."""
    if url.startswith("redis://"):
        async with trouper.pools.redis(url) as pool:
            yield Indexes(url, pool)
    else:
        async with open_store(url) as store:
            yield Indexes(url, store)
