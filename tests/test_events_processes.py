"""Cluster-wide events with a subscriber node in a process of its own,
killed with SIGKILL: the publisher stops counting it once it is down, and
never waits for it meanwhile."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio

import trouper

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from events_actors import ALLOW, Sink, Tick  # noqa: E402

COOKIE = b"events-processes-cookie"
FAST = {"heartbeat_interval": 0.1, "down_after": 1.5, "acceptable_pause": 0.5}


@pytest.fixture(autouse=True)
def child_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let node processes ``import events_actors`` (they inherit the environment)."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), existing) if p))


async def test_a_killed_subscriber_node_is_dropped_from_the_count() -> None:
    with trio.fail_after(60):
        async with (
            trouper.open_node("parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST) as a,
            a.subscribe("feed") as mine,
        ):
            handle = await a.spawn_node(name="victim", allow_spawn=ALLOW)
            sinks = [await a.spawn(Sink, "feed", on="victim") for _ in range(2)]
            while True:  # the victim announces its two subscribers
                if a.subscribers("feed") == 3:
                    break
                await trio.sleep(0.01)
            assert a.publish("feed", Tick(1)) == 3
            for sink in sinks:
                while await sink.ask("report") != [1]:
                    pass
            handle.kill()
            # Until it is known down, the publisher still sends (never waits).
            while [m.status for m in a.members() if m.node_id == "victim"] != ["down"]:
                a.publish("feed", Tick(2))
                await trio.sleep(0.05)
            assert a.subscribers("feed") == 1
            assert a.publish("feed", Tick(3)) == 1
            assert a.event_statistics().remote_subscribers == 0
            got = []
            while (tick := await mine.receive()).n != 3:
                got.append(tick.n)
            assert got[0] == 1 and set(got[1:]) <= {2}
