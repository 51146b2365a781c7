"""``trouper ps/tree/members/top`` as subprocesses against a live node
process (``trouper node --admin``), and the CLI's own manners."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

import trouper
from trouper.cli import _parser

COOKIE = "cli-admin-cookie"
TOKEN = "cli-admin-token-0123456789"


class Worker(trouper.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


@asynccontextmanager
async def node_process(tmp: Path) -> AsyncIterator[dict[str, Any]]:
    """``python -m trouper node --admin 127.0.0.1:0``; yields its ready line."""
    (tmp / "cookie").write_text(COOKIE)
    (tmp / "token").write_text(TOKEN)
    command = [sys.executable, "-m", "trouper", "node", "--name", "proc"]
    command += ["--listen", "tcp://127.0.0.1:0", "--cookie-file", str(tmp / "cookie")]
    command += ["--admin", "127.0.0.1:0", "--admin-token-file", str(tmp / "token")]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        data = b""
        while b"\n" not in data:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, "the node exited before it was ready"
            data += chunk
        yield json.loads(data.split(b"\n", 1)[0])
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def reachable(url: str) -> None:
    """Poll ``url`` until it answers 200; the caller's fail_after bounds it."""
    async with httpx.AsyncClient() as http:
        while True:
            if (await http.get(url)).status_code == 200:
                return
            await trio.sleep(0.05)


async def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "trouper", *args]
    return await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=check)


async def test_ps_tree_members_and_top_against_a_node_process(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with node_process(tmp_path) as ready:
            admin = ready["admin"]
            assert admin.startswith("http://127.0.0.1:")
            # A second node, in this process, joins the first: the CLI reads
            # its actors through the first node's endpoint (an ask to the
            # second node's admin actor, not its HTTP server).
            async with trouper.open_node(
                "local",
                seeds=ready["addresses"],
                cookie=COOKIE,
                listen="tcp://127.0.0.1:0",
                admin="127.0.0.1:0",
            ) as local:
                await local.wait_for_members(2, timeout=10)
                await local.spawn(Worker, name="w")

                ps = (await cli("ps", "--admin", admin, "--system")).stdout.decode()
                assert "/system/admin" in ps and "AdminActor" in ps and "running" in ps
                assert "/system/admin" not in (await cli("ps", "--admin", admin)).stdout.decode()
                # The second node's admin name reaches the first by gossip.
                await reachable(f"{admin}/api/node?node=local")
                remote_ps = await cli("ps", "--admin", admin, "--node", "local")
                assert "/user/w" in remote_ps.stdout.decode()

                tree = (await cli("tree", "--admin", admin)).stdout.decode()
                assert tree.startswith("node proc\n")
                assert "admin (AdminActor, running)" in tree and "└── " in tree

                members = (await cli("members", "--admin", admin)).stdout.decode()
                rows = {line.split()[0]: line.split()[1] for line in members.splitlines()[1:]}
                assert rows == {"proc": "up", "local": "up"}

                top = await cli(
                    "top", "--admin", admin, "--interval", "0.1", "--iterations", "2",
                    "--token-file", str(tmp_path / "token"),
                )  # fmt: skip
                out = top.stdout.decode()
                assert out.count("\x1b[H\x1b[2J") == 2  # refreshed in place, twice
                assert "MSG/S" in out and "AdminActor" in out
                lines = out.replace("\x1b[H\x1b[2J", "").splitlines()
                assert lines and max(len(line) for line in lines) <= 80
                other = await cli("top", "--admin", admin, "--node", "local", "--iterations", "1")
                assert "node local" in other.stdout.decode()
                assert "Worker" in other.stdout.decode()
                for listing in (ps, tree, members):
                    assert max(len(line) for line in listing.splitlines()) <= 80


async def test_errors_are_one_line(tmp_path: Path) -> None:
    with trio.fail_after(30):
        missing = await cli("node", "--cookie-file", str(tmp_path / "nope"), check=False)
        err = missing.stderr.decode()
        assert missing.returncode == 2 and b"Traceback" not in missing.stderr
        assert err.count("\n") == 1 and "cannot read the cookie file" in err
        down = await cli("ps", "--admin", "127.0.0.1:1", check=False)
        assert down.returncode == 2 and down.stderr.decode().count("\n") == 1
        assert "cannot reach the admin endpoint" in down.stderr.decode()
        no_token = await cli(
            "ps", "--admin", "127.0.0.1:1", "--token-file", str(tmp_path / "nope"), check=False
        )
        assert no_token.returncode == 2 and b"Traceback" not in no_token.stderr
        assert "cannot read the token file" in no_token.stderr.decode()
        version = await cli("--version")
        assert version.stdout.decode().strip() == f"trouper {trouper.__version__}"


def test_every_option_has_help() -> None:
    parser = _parser()
    missing = []
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    commands = [("trouper", parser)] + [
        (name, sub) for action in subparsers for name, sub in action.choices.items()
    ]
    for name, command in commands:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            if not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
