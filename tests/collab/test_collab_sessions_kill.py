"""``kill -9`` of the node that holds sessions: a real node process
(``node.spawn_node``) runs a session service and two sessions' actors; it
is killed with SIGKILL (no goodbye, no expiry). The watchers of its actors
get ``Terminated``; a heartbeat to the surviving node re-creates the one
session there (the record outlived its node); the other, never heartbeated
again, is swept by the survivor, which announces its end, and leaves no
index entry behind (raw keys checked).

Real time: failure detection of the dead node (about 1.5 s with the fast
settings below) and a 1 s TTL.
"""

import os
from pathlib import Path

import pytest
import trio
from collab_sessions_helpers import Watch, Watcher, open_indexes, url_for
from examples.collab._shared import SESSION_EVENTS, SessionEnded
from examples.collab.sessions import SessionService, spawn_session_service

import trouper

ROOT = Path(__file__).resolve().parents[2]
#: Fast failure detection in the surviving node: the dead one is down in ~1.5 s.
FAST = {"heartbeat_interval": 0.1, "down_after": 1.5, "acceptable_pause": 0.5}
LOCAL = "tcp://127.0.0.1:0"
SERVICE = "examples.collab.sessions._service:SessionService"


@pytest.fixture(autouse=True)
def child_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the node process import ``examples`` (it inherits the environment)."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), existing) if p))


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
async def test_sessions_outlive_a_node_killed_with_sigkill(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = url_for(kind, request, tmp_path)
    with trio.fail_after(30):
        async with (
            trouper.open_node("survivor", listen=LOCAL, cookie="kill", **FAST) as node,
            open_indexes(url) as raw,
        ):
            await spawn_session_service(node, store_url=url, sweep_interval=0.2)
            child = await node.spawn_node(name="doomed", allow_spawn=[SERVICE])
            await node.wait_for_members(2, timeout=10)
            # The doomed node's own service: (store, default ttl, limits, sweep interval).
            service = await node.spawn(
                SessionService, url, 30.0, None, 60.0, on=child.id, name="collab-sessions"
            )
            on_doomed = node.proxy(SessionService, members=[service])
            kept = await on_doomed.create("ada", "c-kept", ttl=10.0, data={"doc": "d"})
            dropped = await on_doomed.create("bo", "c-dropped", ttl=1.0)
            ended_send, ended = trio.open_memory_channel[trouper.Terminated](10)
            watcher = await node.spawn(Watcher, ended_send)
            for record in (kept, dropped):
                actor = await node.lookup(f"session:{record.id}")
                assert actor.node_id == "doomed"
                await watcher.tell(Watch(actor))

            async with node.subscribe(SESSION_EVENTS) as events:
                child.kill()  # SIGKILL
                reasons = {(await ended.receive()).reason for _ in range(2)}
                assert reasons == {"node-down"}, reasons

                here = node.proxy(SessionService, balance="local-first", timeout=10)
                beat = await here.heartbeat(kept.id)
                assert (beat.created, beat.data) == (kept.created, {"doc": "d"})
                assert (await node.lookup(f"session:{kept.id}")).node_id == "survivor"

                assert await events.receive() == SessionEnded(dropped.id, "bo", "expired")
                assert await raw.anywhere(dropped.id, "bo", "c-dropped") == []
                assert await raw.anywhere(kept.id, "ada", "c-kept") == [
                    "session",
                    "user index",
                    "connection index",
                    "active",
                ]
                assert [r.id for r in await here.list(active=True)] == [kept.id]
