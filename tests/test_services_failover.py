"""Failover with a real node process killed mid-run: idempotent calls carry
on on the surviving member, and a non-idempotent call never runs twice."""

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

from services_rpc_actors import ALLOW, Ledger  # noqa: E402

COOKIE = b"services-failover-cookie"
FAST = {"heartbeat_interval": 0.1, "down_after": 1.5, "acceptable_pause": 0.5}
QUICK = trouper.Backoff(initial=0.01, maximum=0.05, jitter=0.0)


@pytest.fixture(autouse=True)
def _children_import_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), existing) if p))


def local_ledger(ref: trouper.ActorRef) -> Ledger:
    from trouper.runtime import cell_of

    cell = cell_of(ref)
    assert cell is not None and isinstance(cell.instance, Ledger)
    return cell.instance


async def test_calls_fail_over_when_a_node_process_is_killed() -> None:
    with trio.fail_after(60):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST
        ) as a:
            handle = await a.spawn_node(name="victim", allow_spawn=ALLOW)
            await a.spawn(Ledger, on="victim")
            here = await a.spawn(Ledger)
            await a.registry.wait_for_members("ledger", 2, timeout=10)
            retry = trouper.Retry(attempts=3, backoff=QUICK)
            ledger = a.proxy(Ledger, timeout=5.0, retry=retry)
            assert sorted([await ledger.where(), await ledger.where()]) == ["parent", "victim"]
            handle.kill()

            # Not idempotent: each call runs at most once. One that may have
            # reached the dead member fails rather than run again elsewhere.
            before = local_ledger(here).effects
            succeeded = failed = 0
            for _ in range(40):
                try:
                    assert await ledger.add(1) == "parent"
                    succeeded += 1
                except (trouper.NodeDown, trouper.ConnectionLost, trouper.AskTimeout):
                    failed += 1
            assert local_ledger(here).effects - before == succeeded
            assert succeeded >= 20  # the dead member leaves the group: calls stop failing
            # Idempotent: a call that meets the dead member goes on to the live one.
            for _ in range(6):
                assert await ledger.where() == "parent"

            assert [m.node_id for m in a.registry.members("ledger")] == ["parent"]
