"""Clusters of real node processes: remote spawn, messaging, failure detection.

Every child is ``python -m trouper node`` (through ``node.spawn_node`` or run
directly), listening on 127.0.0.1 port 0 unless a test needs a fixed port. The
children import ``cluster_actors`` through ``PYTHONPATH``; this module imports
it under the same name, so both sides agree on the wire names of its types.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

import trouper

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from cluster_actors import (  # noqa: E402
    ALLOW,
    Boom,
    CallBack,
    Count,
    Echo,
    Finder,
    Hang,
    NotAllowed,
    Numbers,
    Ping,
    Quit,
    Relay,
    Silent,
    WhoAmI,
)

COOKIE = b"cluster-processes-cookie"
#: Fast failure detection for the parent: node-down within a couple of seconds.
FAST = {"heartbeat_interval": 0.1, "down_after": 1.5, "acceptable_pause": 0.5}
DETECTION_BOUND = 5.0


@pytest.fixture(autouse=True)
def child_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let node processes ``import cluster_actors`` (they inherit the environment)."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), existing) if p))


# ------------------------------------------------------------------ helpers


class WatchIt(msgspec.Struct, frozen=True):
    ref: trouper.ActorRef


class Watcher(trouper.Actor):
    """Watches what it is told to; reports each Terminated, with its arrival time."""

    def __init__(self, out: trio.MemorySendChannel[tuple[Any, str, float]]) -> None:
        self.out = out

    @trouper.handler
    async def watch_it(self, msg: WatchIt) -> None:
        self.ctx.watch(msg.ref)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        self.out.send_nowait((msg.ref, msg.reason, trio.current_time()))


class Collector(trouper.Actor):
    """Reports every Ping it receives, with its sender."""

    def __init__(self, out: trio.MemorySendChannel[tuple[int, Any]]) -> None:
        self.out = out

    @trouper.handler
    async def ping(self, msg: Ping) -> int:
        self.out.send_nowait((msg.n, self.ctx.sender))
        return msg.n


async def start_watcher(
    node: trouper.Node, *refs: trouper.ActorRef
) -> trio.MemoryReceiveChannel[tuple[Any, str, float]]:
    send, recv = trio.open_memory_channel[tuple[Any, str, float]](100)
    watcher = await node.spawn(Watcher, send)
    for ref in refs:
        await watcher.tell(WatchIt(ref))
    await trio.sleep(0.2)  # let the Watch envelopes reach the other node
    return recv


def member(node: trouper.Node, node_id: str) -> trouper.MemberInfo | None:
    return next((m for m in node.members() if m.node_id == node_id), None)


async def wait_member(node: trouper.Node, node_id: str, status: str, incarnation: int = -1) -> int:
    """Wait until ``node_id`` has ``status`` (in an incarnation other than
    ``incarnation``); return that incarnation."""
    while True:
        m = member(node, node_id)
        if m is not None and m.status == status and m.incarnation != incarnation:
            return m.incarnation
        await trio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def node_process(
    name: str, listen: str, seed: str, cookie_file: Path
) -> AsyncIterator[tuple[trio.Process, dict[str, Any]]]:
    """``python -m trouper node`` as a process; yields it and its ready line."""
    command = [sys.executable, "-m", "trouper", "node", "--name", name, "--listen", listen]
    command += ["--seed", seed, "--cookie-file", str(cookie_file)]
    for pattern in ALLOW:
        command += ["--allow-spawn", pattern]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        data = b""
        while b"\n" not in data:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, f"node {name} exited before it was ready"
            data += chunk
        yield process, json.loads(data.split(b"\n", 1)[0])
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


# -------------------------------------------------------------------- tests


async def test_remote_spawn_and_location_transparency() -> None:
    with trio.fail_after(30):
        async with trouper.open_node("parent", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a:
            handle = await a.spawn_node(name="child", allow_spawn=ALLOW)
            assert handle.id == "child" and handle.pid > 0 and handle.running
            assert member(a, "child") is not None

            echo = await a.spawn(Echo, 10, on="child", name="echo")
            assert echo.node_id == "child" and echo.path == "/user/echo"
            # ask, tell (then ask the count), a stream, a boxed remote error
            assert await echo.ask(Ping(1)) == 11
            for i in range(5):
                await echo.tell(Ping(i))
            assert await echo.ask(Count()) == 6
            assert await echo.ask(WhoAmI()) == "child"
            async with echo.stream(Numbers(100), window=8) as items:
                assert sum([i async for i in items]) == sum(range(100))
            with pytest.raises(trouper.RemoteError) as info:
                await echo.ask(Boom("bad"))
            assert info.value.type_name == "ValueError" and info.value.message == "bad"
            assert info.value.node == "child" and info.value.path == "/user/echo"

            # lookup: the child's name from the parent ...
            assert await a.lookup("echo", timeout=5) == echo
            # ... and the parent's name from the child (a Finder on the child relays)
            await a.spawn(Echo, 1000, name="parent-echo")
            finder = await a.spawn(Finder, on="child")
            assert await finder.ask(Relay("parent-echo", 1)) == 1001

            # refs inside messages: the child tells back to a local actor
            send, recv = trio.open_memory_channel[tuple[int, Any]](10)
            collector = await a.spawn(Collector, send)
            await echo.tell(CallBack(collector, 7))
            n, sender = await recv.receive()
            assert n == 7 and sender == echo  # the sender ref is the same address here

            # watch: a local watcher hears the remote actor stop
            events = await start_watcher(a, echo)
            await echo.tell(Quit())
            ref, reason, _ = await events.receive()
            assert ref == echo and reason != "node-down"
            with pytest.raises(trouper.ActorDead):
                await echo.ask(Ping(1), timeout=2)

            # allow_spawn is enforced by the child
            with pytest.raises(trouper.SpawnRefused, match="NotAllowed"):
                await a.spawn(NotAllowed, on="child")
            assert await (await a.spawn(Echo, on="child")).ask(Ping(2)) == 2
        assert not handle.running


async def test_kill_9_fires_node_down_fails_pending_asks_and_drops_names() -> None:
    with trio.fail_after(30):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST
        ) as a:
            handle = await a.spawn_node(name="victim", allow_spawn=ALLOW)
            echo = await a.spawn(Echo, on="victim", name="victim-echo")
            silent = await a.spawn(Silent, on="victim", name="victim-silent")
            assert await a.lookup("victim-echo", timeout=5) == echo
            assert await silent.ask(Ping(3)) == 3
            events = await start_watcher(a, echo, silent)

            pending: list[tuple[BaseException, float]] = []

            async def ask_forever() -> None:
                try:
                    await silent.ask(Hang(), timeout=30)
                except trouper.TrouperError as exc:
                    pending.append((exc, trio.current_time()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_forever)
                await trio.sleep(0.3)  # the Hang ask is in flight
                killed_at = trio.current_time()
                handle.kill()

                seen = {}
                while len(seen) < 2:
                    ref, reason, at = await events.receive()
                    assert reason == "node-down"
                    assert at - killed_at < DETECTION_BOUND
                    seen[ref] = reason
                assert set(seen) == {echo, silent}
            exc, failed_at = pending[0]
            assert isinstance(exc, trouper.NodeDown) and exc.is_retryable
            assert failed_at - killed_at < 2.0  # at the broken connection, before detection

            assert member(a, "victim").status == "down"  # type: ignore[union-attr]
            for name in ("victim-echo", "victim-silent"):
                with pytest.raises(trouper.ActorNotFound):
                    await a.lookup(name)
            with pytest.raises(trouper.NodeDown):
                await echo.ask(Ping(1), timeout=2)
            # a watch placed after the node died fires at once
            late = await start_watcher(a, echo)
            assert (await late.receive())[1] == "node-down"


async def test_a_restarted_node_is_a_new_incarnation(tmp_path: Path) -> None:
    cookie_file = tmp_path / "cookie"
    cookie_file.write_bytes(COOKIE)
    cookie_file.chmod(0o600)
    listen = f"tcp://127.0.0.1:{free_port()}"
    with trio.fail_after(40):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST
        ) as a:
            (seed,) = a.addresses
            async with node_process("phoenix", listen, seed, cookie_file) as (first, ready):
                assert ready["node"] == "phoenix" and ready["addresses"] == [listen]
                first_incarnation = await wait_member(a, "phoenix", "up")
                old = await a.spawn(Echo, on="phoenix", name="phoenix-echo")
                assert await old.ask(Ping(1)) == 1
                events = await start_watcher(a, old)
                first.kill()
                await first.wait()

            async with node_process("phoenix", listen, seed, cookie_file) as (_, ready):
                assert ready["addresses"] == [listen]
                await wait_member(a, "phoenix", "up", first_incarnation)
                ref, reason, _ = await events.receive()
                assert ref == old and reason == "node-down"
                # Not silence: the old ref fails fast and says why.
                with pytest.raises((trouper.ActorDead, trouper.NodeDown)):
                    await old.ask(Ping(2), timeout=3)
                with pytest.raises(trouper.ActorNotFound):
                    await a.lookup("phoenix-echo")


async def test_refs_of_a_previous_incarnation_never_reach_its_successor() -> None:
    """A node restarted under the same name that spawns the same actor at the
    same path must not hand out the old address again: refs held from before
    the restart must not silently reach the new actor."""
    with trio.fail_after(20):
        async with trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a:
            async with trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b:
                await a.wait_for_members(2, timeout=5)
                old = await b.spawn(Echo, name="echo")
                old_remote = await a.lookup("echo", timeout=5)
                assert old_remote == old
            await wait_member(a, "b", "down")
            async with trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b2:
                await a.wait_for_members(2, timeout=5)
                new = await b2.spawn(Echo, name="echo")
                assert await a.lookup("echo", timeout=5) == new
                assert new != old
                with pytest.raises((trouper.ActorDead, trouper.NodeDown)):
                    await old_remote.ask(Ping(1), timeout=2)


class Stranger(msgspec.Struct, frozen=True):
    """Registered here only: node processes have never heard of this type."""


trouper.message(Stranger)


async def test_a_message_to_a_dead_actor_does_not_break_the_link() -> None:
    """The target is checked before the payload is decoded: a message to an
    actor that is gone is answered ActorDead, whatever its type, and the
    link (with everything else in flight on it) carries on."""
    with trio.fail_after(30):
        async with trouper.open_node("parent", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a:
            await a.spawn_node(name="child", allow_spawn=ALLOW)
            echo = await a.spawn(Echo, on="child")
            silent = await a.spawn(Silent, on="child")
            await echo.tell(Quit())
            with pytest.raises(trouper.ActorDead):
                await echo.ask(Ping(1), timeout=2)
            incarnation = member(a, "child").incarnation  # type: ignore[union-attr]
            async with trio.open_nursery() as nursery:

                async def in_flight() -> None:
                    # An ask in flight on the same link meanwhile is not failed.
                    assert await silent.ask(Hang(1.0), timeout=5) == "late"

                nursery.start_soon(in_flight)
                await trio.sleep(0.1)
                with pytest.raises(trouper.ActorDead):
                    await echo.ask(Stranger(), timeout=2)
            assert await silent.ask(Ping(2), timeout=2) == 2
            assert member(a, "child").incarnation == incarnation  # type: ignore[union-attr]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_trouper_node_leaves_gracefully_on_a_signal(sig: signal.Signals) -> None:
    with trio.fail_after(30):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST
        ) as a:
            handle = await a.spawn_node(name="leaver", allow_spawn=ALLOW)
            echo = await a.spawn(Echo, on="leaver", name="leaver-echo")
            events = await start_watcher(a, echo)
            handle.process.send_signal(sig)
            with trio.fail_after(10):
                returncode = await handle.process.wait()
            assert returncode == 0
            ref, _reason, _ = await events.receive()
            assert ref == echo
            # The parent saw it leave (a Goodbye), without waiting for detection.
            with trio.fail_after(1):
                await wait_member(a, "leaver", "down")
            with pytest.raises(trouper.ActorNotFound):
                await a.lookup("leaver-echo")


STOP_THEN_LEAVE = """
import trio, trouper

async def main():
    with trio.fail_after(10):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie="c"
        ) as a:
            handle = await a.spawn_node(name="stopper")
            assert await handle.stop() == 0
            assert not handle.running
            assert [m.status for m in a.members() if m.node_id == "stopper"] == ["down"]
            try:
                assert await handle.stop() == 0  # idempotent
            except BaseException as exc:
                print("the second stop() raised", repr(exc), flush=True)
                raise
    print("left")

trio.run(main)
"""


async def test_node_handle_stop_is_a_graceful_sigterm_and_idempotent() -> None:
    # In a process of its own: a node that cannot shut down hangs for good
    # (its host scope is shielded), and this test must fail, not hang.
    run = functools.partial(
        subprocess.run,
        [sys.executable, "-c", STOP_THEN_LEAVE],
        capture_output=True,
        text=True,
        timeout=10,
    )
    try:
        result = await trio.to_thread.run_sync(run)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")  # type: ignore[union-attr]
        pytest.fail(f"the node never finished leaving open_node; its output:\n{out}")
    assert result.returncode == 0 and result.stdout.strip() == "left", result.stderr[-3000:]


async def test_three_nodes_find_each_other() -> None:
    with trio.fail_after(30):
        async with trouper.open_node(
            "parent", listen="tcp://127.0.0.1:0", cookie=COOKIE, **FAST
        ) as a:
            await a.spawn_node(name="b", allow_spawn=ALLOW)
            await a.spawn_node(name="c", allow_spawn=ALLOW)
            await a.wait_for_members(3, timeout=5)
            await a.spawn(Echo, 100, on="c", name="c-echo")
            finder = await a.spawn(Finder, on="b")
            # b looks the name up (it learns of c through gossip) and asks c.
            assert await finder.ask(Relay("c-echo", 5), timeout=15) == 105
