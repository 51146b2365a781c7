"""The admin kill interrupts: a hung handler or on_start fails at once with
ActorKilled, and its supervisor decides (runtime/_admin.py ``fail_actor``).

Real nodes throughout; the HTTP test uses real sockets on 127.0.0.1, the
others the autojump clock (no sockets)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trouper
from trouper.runtime import fail_actor

TOKEN = "s3cret-admin-token-0123456789"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class Journal:
    """What the instances of one actor did, shared across its restarts."""

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0
        self.causes: list[BaseException] = []
        self.hung = trio.Event()
        self.restarted = trio.Event()
        #: The instance whose on_start hangs (1 is the first), 0 for none.
        self.hang_on_start = 0
        self.seen: list[Any] = []


class Hanger(trouper.Actor):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        journal = self.journal
        journal.starts += 1
        if journal.starts == journal.hang_on_start:
            journal.hung.set()
            await trio.sleep_forever()

    async def on_restart(self, exc: BaseException) -> None:
        self.journal.causes.append(exc)
        self.journal.restarted.set()

    async def on_stop(self) -> None:
        self.journal.stops += 1

    async def receive(self, msg: Any) -> Any:
        self.journal.seen.append(msg)
        if msg == "hang":
            self.journal.hung.set()
            await trio.sleep_forever()
        return msg


def cell_of(node: trouper.Node, path: str) -> Any:
    cell = node.kernel.cell_at(path)
    assert cell is not None, path
    return cell


async def test_a_hung_handler_killed_through_the_http_api_restarts() -> None:
    journal = Journal()
    with trio.fail_after(20):
        async with (
            trouper.open_node(admin="127.0.0.1:0", admin_token=TOKEN) as node,
            httpx.AsyncClient(base_url=f"http://{node.admin_address}") as http,
        ):
            ref = await node.spawn(Hanger, journal, name="h")
            failures: list[BaseException] = []

            async def ask_hang() -> None:
                try:
                    await ref.ask("hang", timeout=60)
                except trouper.TrouperError as exc:
                    failures.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_hang)
                await journal.hung.wait()
                killed = await http.post("/api/actors/user/h/kill", headers=AUTH)
                assert killed.status_code == 202
            # The asker of the interrupted handler got the failure, not a timeout.
            assert len(failures) == 1 and isinstance(failures[0], trouper.ActorKilled)
            await journal.restarted.wait()
            assert isinstance(journal.causes[0], trouper.ActorKilled)
            assert journal.stops == 1  # on_stop ran, as for any failure
            assert await ref.ask("next", timeout=5) == "next"
            actor = (await http.get("/api/actors/user/h")).json()
            assert (actor["restarts"], actor["state"]) == (1, "running")


async def test_a_told_hung_handler_is_killed_and_queued_messages_survive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    with trio.fail_after(60):  # virtual time: a red kill fails, not hangs
        async with trouper.open_node() as node:
            ref = await node.spawn(Hanger, journal, name="h")
            await ref.tell("hang")
            await ref.tell("after")
            await journal.hung.wait()
            fail_actor(cell_of(node, "/user/h"), trouper.ActorKilled("killed"))
            await journal.restarted.wait()
            assert await ref.ask("next", timeout=5) == "next"
            # The message queued behind the hung one is kept for the new
            # instance, as after any failure.
            assert journal.seen == ["hang", "after", "next"]
            assert journal.starts == 2 and len(journal.causes) == 1


async def test_a_hung_on_start_of_a_restart_is_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    journal.hang_on_start = 2
    with trio.fail_after(60):  # virtual time: a red kill fails, not hangs
        async with trouper.open_node() as node:
            ref = await node.spawn(Hanger, journal, name="h")
            cell = cell_of(node, "/user/h")
            fail_actor(cell, trouper.ActorKilled("first"))
            await journal.hung.wait()  # the restart's on_start hangs
            assert journal.causes == []
            fail_actor(cell, trouper.ActorKilled("second"))
            await journal.restarted.wait()
            assert journal.starts == 3
            assert [str(c) for c in journal.causes] == ["second"]
            assert await ref.ask("next", timeout=5) == "next"


async def test_a_hung_initial_on_start_fails_the_spawn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    journal.hang_on_start = 1
    with trio.fail_after(60):  # virtual time: a red kill fails, not hangs
        async with trouper.open_node() as node:
            spawned: list[BaseException] = []

            async def spawn() -> None:
                # As for any on_start that raises: the spawn is refused.
                with pytest.raises(trouper.SpawnRefused) as caught:
                    await node.spawn(Hanger, journal, name="h")
                assert caught.value.__cause__ is not None
                spawned.append(caught.value.__cause__)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(spawn)
                await journal.hung.wait()
                fail_actor(cell_of(node, "/user/h"), trouper.ActorKilled("killed while starting"))
            assert [type(e) for e in spawned] == [trouper.ActorKilled]
            assert [str(e) for e in spawned] == ["killed while starting"]
            assert node.kernel.cell_at("/user/h") is None


async def test_an_idle_actor_is_killed_and_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    with trio.fail_after(60):  # virtual time: a red kill fails, not hangs
        async with trouper.open_node() as node:
            ref = await node.spawn(Hanger, journal, name="h")
            await trio.testing.wait_all_tasks_blocked()
            cell = cell_of(node, "/user/h")
            # Idle: no handler runs, so the queued Crash alone fails it.
            fail_actor(cell, trouper.ActorKilled("idle"))
            await journal.restarted.wait()
            assert [str(c) for c in journal.causes] == ["idle"]
            assert journal.stops == 1
            assert await ref.ask("next", timeout=5) == "next"


class SlowStop(trouper.Actor):
    def __init__(self, stopping: trio.Event) -> None:
        self.stopping = stopping

    async def on_stop(self) -> None:
        self.stopping.set()
        await trio.sleep_forever()


async def test_a_kill_while_stopping_ends_the_stop_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stopping = trio.Event()
    with trio.fail_after(60):  # virtual time: a red kill fails, not hangs
        async with trouper.open_node() as node:
            ref = await node.spawn(SlowStop, stopping, name="s", shutdown=600.0)
            cell = cell_of(node, "/user/s")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.stop, ref)
                await stopping.wait()
                # Well before the shutdown time (virtual time: deterministic).
                with trio.fail_after(60):
                    fail_actor(cell, trouper.ActorKilled("killed"))
                    await cell.wait_dead()
            assert cell.dead and cell.reason == "killed"


async def test_kill_of_a_guardian_or_a_dead_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = Journal()
    with trio.fail_after(60):  # virtual time: a red kill fails, not hangs
        async with trouper.open_node() as node:
            ref = await node.spawn(Hanger, journal, name="h")
            cell = cell_of(node, "/user/h")
            with pytest.raises(trouper.ConfigurationError, match="guardians"):
                fail_actor(cell_of(node, "/user"), trouper.ActorKilled("no"))
            await node.stop(ref)
            fail_actor(cell, trouper.ActorKilled("too late"))  # a no-op
            assert cell.dead and cell.reason != "killed"
