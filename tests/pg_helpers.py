"""Helpers for the PostgreSQL tests: an admin connection outside the pool under test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import trio


async def admin(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection of its own (in a thread)."""

    def run() -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql, args or None)
            return cur.fetchall() if cur.description else []

    return await trio.to_thread.run_sync(run)


async def others(url: str) -> list[tuple[int, str, str]]:
    """(pid, state, query) of every other client connection to ``url``'s database."""
    rows = await admin(
        url,
        "SELECT pid, coalesce(state, ''), query FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend'",
    )
    return [(int(p), str(s), str(q)) for p, s, q in rows]


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - the server's state, not an event
            await trio.sleep(0.02)
