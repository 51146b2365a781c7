"""Each editor connection holds a session of the session service: created
on connect with its user and connection id, deleted when it closes (so the
locks taken under it go with it)."""

from pathlib import Path

import trio
from collab_edge_helpers import STEP, collab_node
from examples.collab.client import open_client
from examples.collab.sessions import SessionRecord, SessionService
from examples.collab.sync import StateSync

import trouper


async def _sessions_of(node: trouper.Node, user: str) -> list[SessionRecord]:
    return await node.proxy(SessionService, timeout=STEP).list(user=user)


async def _until_count(node: trouper.Node, user: str, count: int) -> list[SessionRecord]:
    while True:  # polled (the caller bounds it): the session is made after the sync starts
        found = await _sessions_of(node, user)
        if len(found) == count:
            return found
        await trio.sleep(0.02)


async def test_a_connection_holds_a_session(tmp_path: Path) -> None:
    with trio.fail_after(STEP * 2):
        async with collab_node(tmp_path / "collab.db", session_ttl=3.0) as (node, gateway):
            async with open_client([gateway.url], "doc", "ada") as ada:
                await ada.synced()
                (record,) = await _until_count(node, "ada", 1)
                assert record.connection.startswith(f"{node.id}/") and record.ttl == 3.0
                # Heartbeats (every ttl/3) keep it alive past its TTL.
                await trio.sleep(record.ttl * 1.5)  # real time: the store's TTL is wall-clock
                (alive,) = await _sessions_of(node, "ada")
                assert alive.id == record.id and alive.last_heartbeat > record.last_heartbeat
                async with open_client([gateway.url], "doc", "ada") as again:
                    await again.synced()
                    assert len(await _until_count(node, "ada", 2)) == 2
            await _until_count(node, "ada", 0)  # both connections closed: both deleted


async def test_a_lock_dies_with_its_connection(tmp_path: Path) -> None:
    """A lock taken under a connection's session is released when the
    connection closes: the session is deleted, its end is published, and
    the document releases the session's locks."""
    with trio.fail_after(STEP * 2):
        async with collab_node(tmp_path / "collab.db") as (node, gateway):
            sync = node.proxy(StateSync, timeout=STEP)
            async with open_client([gateway.url], "locked", "ada") as ada:
                await ada.synced()
                (session,) = await _until_count(node, "ada", 1)
                lease = await sync.acquire_lock("locked", "*", session.id, 30.0)
                assert lease.token > 0 and (await sync.stats("locked")).locks == 1
            while True:  # polled, bounded: the session's end reaches the document
                if (await sync.stats("locked")).locks == 0:
                    break
                await trio.sleep(0.02)
