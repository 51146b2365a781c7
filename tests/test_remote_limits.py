"""The per-link limits (pending asks, rate), frame size on the sending side,
and the ``trouper certs`` command."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

import trouper
from trouper.remote import Remoting
from trouper.runtime import cell_of

COOKIE = b"limits"


class Gate(trouper.Actor):
    def __init__(self) -> None:
        self.entered = 0
        self.open = trio.Event()

    @trouper.handler
    async def wait(self, msg: int) -> int:
        self.entered += 1
        await self.open.wait()
        return msg

    @trouper.handler
    async def count(self, msg: bytes) -> int:
        return len(msg)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a state another node reaches (no event crosses the wire)."""
    with trio.fail_after(timeout):
        while True:
            if predicate():
                return
            await trio.sleep(0.01)


async def test_pending_asks_are_bounded_per_peer() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node("srv", listen="tcp://127.0.0.1:0", cookie=COOKIE) as server,
            trouper.open_node(
                "cli", seeds=server.addresses, cookie=COOKIE, max_pending_asks=2
            ) as client,
        ):
            await client.wait_for_members(2)
            gate = await server.spawn(Gate, name="gate")
            remote = await client.lookup("gate", timeout=5)
            results: list[int] = []

            async def ask(n: int) -> None:
                results.append(await remote.ask(n, timeout=10))

            async with trio.open_nursery() as nursery:
                for n in range(5):
                    nursery.start_soon(ask, n)
                gate_actor = cell_of(gate).instance  # type: ignore[union-attr]
                assert isinstance(gate_actor, Gate)
                remoting = client.remote
                assert isinstance(remoting, Remoting)
                # Two asks go out (one handled, one queued); the other three
                # wait for a slot on the client, and none of them fails.
                await eventually(lambda: remoting.statistics()["srv"].pending_asks == 2)
                serving = server.remote
                assert isinstance(serving, Remoting)
                await eventually(lambda: serving.statistics()["cli"].inbound_asks == 2)
                assert gate_actor.entered + cell_of(gate).mailbox_depth == 2  # type: ignore[union-attr]
                assert remoting.statistics()["srv"].pending_asks == 2
                assert gate_actor.entered == 1
                gate_actor.open.set()
            assert sorted(results) == [0, 1, 2, 3, 4]


async def test_rate_limit_slows_the_sender_and_loses_nothing() -> None:
    with trio.fail_after(30):
        async with (
            trouper.open_node(
                "srv", listen="tcp://127.0.0.1:0", cookie=COOKIE, rate_limit=200.0
            ) as server,
            trouper.open_node("cli", seeds=server.addresses, cookie=COOKIE) as client,
        ):
            await client.wait_for_members(2)
            await server.spawn(Gate, name="gate")
            remote = await client.lookup("gate", timeout=5)
            start = trio.current_time()
            for _ in range(600):
                await remote.tell(b"x")
            sizes = [await remote.ask(b"xy") for _ in range(3)]
            # 600 envelopes over a bucket of 200/s (burst 200): at least 2 s,
            # whatever the machine; an upper bound would be a timing test.
            assert trio.current_time() - start >= 1.9
            assert sizes == [2, 2, 2]


async def test_oversize_messages_fail_at_the_sender() -> None:
    with trio.fail_after(20):
        async with (
            trouper.open_node(
                "srv", listen="tcp://127.0.0.1:0", cookie=COOKIE, max_frame_size=1 << 16
            ) as server,
            trouper.open_node(
                "cli", seeds=server.addresses, cookie=COOKIE, max_frame_size=1 << 16
            ) as client,
        ):
            await client.wait_for_members(2)
            await server.spawn(Gate, name="gate")
            remote = await client.lookup("gate", timeout=5)
            with pytest.raises(trouper.FrameTooLarge):
                await remote.ask(b"x" * (1 << 17))
            assert await remote.ask(b"x" * 1000) == 1000  # the link is fine


def test_trouper_certs_command(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    proc = subprocess.run(
        [sys.executable, "-m", "trouper", "certs", str(out), "--name", "a", "--name", "b"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("ca.pem", "ca-key.pem", "a.pem", "a-key.pem", "b.pem", "b-key.pem"):
        assert (out / name).stat().st_size > 0
    assert (out / "a-key.pem").stat().st_mode & 0o077 == 0
    tls = trouper.TLSConfig.from_dir(out, "a")
    assert tls.server_context() and tls.client_context()
