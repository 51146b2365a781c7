"""A proxy is typed as its service class: mypy --strict checks every call,
and a channel method (its channel first) is typed as what the proxy makes of
it: ``async with proxy.m(args) as channel``, a ``ServiceChannel[In, Out]``.

A small program is checked by mypy in a subprocess: right calls pass, wrong
argument types and unknown methods are reported, and ``assert_type`` pins
the types a proxy gives."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import trouper

PROGRAM = """
from typing import assert_type
import trouper

@trouper.service("accounts")
class Accounts(trouper.Actor):
    @trouper.rpc
    async def deposit(self, account: str, amount: int) -> int:
        return amount

    @trouper.rpc(idempotent=True, roles={"admin"})
    async def owner(self, account: str) -> str | None:
        return None

    @trouper.rpc
    async def watch(self, channel: trouper.Channel[str, int], account: str) -> None:
        return None

    @trouper.rpc(roles={"admin"})
    async def audit(self, channel: trouper.Channel[int, str], since: int = 0) -> None:
        return None

async def use(node: trouper.Node) -> None:
    accounts = node.proxy(Accounts, timeout=2.0)
    assert_type(accounts, Accounts)
    assert_type(await accounts.deposit("ada", 10), int)
    assert_type(await accounts.owner(account="ada"), str | None)
    await accounts.deposit("ada", "ten")  # WRONG-1
    await accounts.deposit(10, 10)  # WRONG-2
    await accounts.withdraw("ada", 1)  # WRONG-3
    await accounts.deposit("ada")  # WRONG-4
    node.proxy(Accounts, retry=3)  # WRONG-5
    retried = node.proxy(Accounts, retry=trouper.Retry(attempts=2), balance="local-first")
    assert_type(await retried.deposit(account="bob", amount=1), int)
    async with accounts.watch("ada") as watching:
        assert_type(watching, trouper.services.ServiceChannel[int, str])
        await watching.send(1)
        assert_type(await watching.receive(), str)
        await watching.send("one")  # WRONG-6
    async with accounts.audit(since=3).window(64) as auditing:
        assert_type(auditing, trouper.services.ServiceChannel[str, int])
    accounts.watch(1)  # WRONG-7
    accounts.watch("ada", channel=None)  # WRONG-8
"""


def test_mypy_reports_wrong_arguments_of_a_proxy_call(tmp_path: Path) -> None:
    program = tmp_path / "calls.py"
    program.write_text(textwrap.dedent(PROGRAM))
    src = Path(trouper.__file__).resolve().parents[1]
    env = {**os.environ, "MYPYPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir=/dev/null",
         "--follow-imports=silent", str(program)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    lines = program.read_text().splitlines()
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    flagged = {int(line.split(":")[1]) for line in errors}
    wrong = {i + 1 for i, text in enumerate(lines) if "# WRONG-" in text}
    assert flagged == wrong, out.stdout
