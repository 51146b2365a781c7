"""Node down, per transport: a node that leaves says so; one that is killed is detected.

A node that closes (``open_node`` exits) stops its actors and sends a
``Goodbye``: its peers mark it down at once, without waiting for the failure
detector. A node killed with SIGKILL (a ``trouper node`` process started by
``spawn_node``, listening on the transport under test with the parent's TLS
files) says nothing: the failure detector declares it down, watchers hear
``node-down`` and asks in flight fail with ``NodeDown``.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from conformance_actors import ALLOW, Echo, Gate, Hang, Hold, Ping, Pong, Silent, Watcher, WatchIt
from conformance_helpers import Net, member_status, wait_status

import trouper


def down_reasons(caplog: pytest.LogCaptureFixture, node_id: str) -> list[str]:
    """Why peers said ``node_id`` went down (the runtime logs each verdict)."""
    return [
        str(r.args[2])
        for r in caplog.records
        if r.name == "trouper.remote"
        and r.msg == "node %s (%s) is down: %s"
        and isinstance(r.args, tuple)
        and r.args[0] == node_id
    ]


async def assert_gone(
    nodes: list[trouper.Node], node_id: str, names: list[str], ref: trouper.ActorRef
) -> None:
    for node in nodes:
        assert (member_status(node, node_id) or ("",))[0] == "down", node.id
        for name in names:
            with pytest.raises(trouper.ActorNotFound):
                await node.lookup(name)
    with pytest.raises(trouper.NodeDown):
        await ref.ask(Ping(1), timeout=2)


async def ask_failing(ref: trouper.ActorRef, msg: object, failed: list[BaseException]) -> None:
    """Ask ``ref`` (no timeout); record the error it ends with."""
    try:
        await ref.ask(msg, timeout=None)
    except trouper.TrouperError as exc:
        failed.append(exc)


async def test_a_node_that_leaves_is_down_at_once(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trouper.remote")
    send, events = trio.open_memory_channel[trouper.Terminated](10)
    failed: list[BaseException] = []
    with trio.fail_after(30):
        async with net.cluster(2, fast=True) as (a, b):
            watcher = await a.spawn(Watcher, send)
            async with (
                trio.open_nursery() as nursery,
                net.open_node("n2", seeds=a.addresses, fast=True) as c,
            ):
                for node in (a, b, c):
                    await node.wait_for_members(3, timeout=10)
                arrived = trio.Event()
                await c.spawn(Echo, name="leaver-echo")
                await c.spawn(Gate, arrived, trio.Event(), name="leaver-gate", shutdown=0.1)
                echo = await a.lookup("leaver-echo", timeout=5)
                gate = await a.lookup("leaver-gate", timeout=5)
                from_b = await b.lookup("leaver-echo", timeout=5)
                assert await from_b.ask(Ping(0)) == Pong(1, "n2")
                await watcher.ask(WatchIt(echo))
                await watcher.ask(WatchIt(gate))
                assert await echo.ask(Ping(1)) == Pong(2, "n2")  # behind the Watches
                nursery.start_soon(ask_failing, gate, Hold(1), failed)
                await arrived.wait()
                # leaving the block closes c: it stops its actors (telling
                # their watchers), then says goodbye
            # the ask in flight failed: its actor stopped, or its node left
            assert len(failed) == 1 and isinstance(failed[0], trouper.ActorDead | trouper.NodeDown)
            told = {t.ref: t.reason for t in (await events.receive(), await events.receive())}
            assert set(told) == {echo, gate}, told
            # their own stop reasons crossed the wire ahead of the Goodbye
            assert "node-down" not in told.values(), told
            with trio.fail_after(2):
                await wait_status(a, "n2", "down")
                await wait_status(b, "n2", "down")
            assert down_reasons(caplog, "n2") == ["left the cluster"] * 2
            await assert_gone([a, b], "n2", ["leaver-echo", "leaver-gate"], echo)
            # a watch placed now fires at once
            await watcher.ask(WatchIt(echo))
            assert await events.receive() == trouper.Terminated(echo, "node-down")
            # the others carry on
            await b.spawn(Echo, name="stayer")
            assert await (await a.lookup("stayer", timeout=5)).ask(Ping(3)) == Pong(4, "n1")


async def test_a_killed_node_is_detected(
    net: Net, child_pythonpath: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trouper.remote")
    send, events = trio.open_memory_channel[trouper.Terminated](10)
    failed: list[BaseException] = []
    with trio.fail_after(45):
        async with net.cluster(2, fast=True) as (a, b):
            # a `trouper node` process on this transport, with a's TLS files
            handle = await a.spawn_node(name="victim", allow_spawn=ALLOW, listen=net.listen)
            assert [url.split("://")[0] for url in handle.addresses] == [net.scheme]
            await b.wait_for_members(3, timeout=10)  # b dialled it too, met through gossip
            echo = await a.spawn(Echo, on="victim", name="victim-echo")
            silent = await a.spawn(Silent, on="victim", name="victim-silent")
            assert await echo.ask(Ping(1)) == Pong(2, "victim")
            from_b = await b.lookup("victim-echo", timeout=5)
            assert await from_b.ask(Ping(2)) == Pong(3, "victim")
            watcher = await a.spawn(Watcher, send)
            await watcher.ask(WatchIt(echo))
            await watcher.ask(WatchIt(silent))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask_failing, silent, Hang(), failed)
                await trio.testing.wait_all_tasks_blocked()  # the Hang is queued ...
                assert await echo.ask(Ping(3)) == Pong(4, "victim")  # ... and delivered
                handle.kill()
                told = {t.ref: t.reason for t in (await events.receive(), await events.receive())}
            assert told == {echo: "node-down", silent: "node-down"}
            assert len(failed) == 1 and isinstance(failed[0], trouper.NodeDown), failed
            assert failed[0].is_retryable
            with trio.fail_after(10):
                await wait_status(b, "victim", "down")
            assert not any(r == "left the cluster" for r in down_reasons(caplog, "victim"))
            await assert_gone([a, b], "victim", ["victim-echo", "victim-silent"], echo)
            with pytest.raises(trouper.NodeDown):
                await from_b.ask(Ping(1), timeout=2)
            await watcher.ask(WatchIt(echo))
            assert await events.receive() == trouper.Terminated(echo, "node-down")
            await b.spawn(Echo, name="stayer")
            assert await (await a.lookup("stayer", timeout=5)).ask(Ping(3)) == Pong(4, "n1")
