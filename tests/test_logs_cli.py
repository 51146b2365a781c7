"""``trouper node`` writes its logs as one JSON object per line on stderr,
asked by ``--log-format json`` or by ``TROUPER_LOG=json``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import trouper

SRC = str(Path(__file__).resolve().parent.parent / "src")
FIELDS = {"timestamp", "level", "logger", "message", "node", "actor", "trace_id", "span_id"}


async def run_node(
    name: str, tmp_path: Path, *flags: str, env: dict[str, str], until: str = "listening on"
) -> list[Any]:
    """A ``trouper node``, stopped with SIGTERM once it wrote a whole line
    containing ``until`` on stderr; returns what it wrote there, each line
    parsed as JSON (which fails on any line that is not)."""
    cookie = tmp_path / "cookie"
    cookie.write_text("cli-logs-cookie")
    command = [sys.executable, "-m", "trouper", "node", "--name", name]
    command += ["--listen", "tcp://127.0.0.1:0", "--cookie-file", str(cookie), *flags]
    environ = {**os.environ, "PYTHONPATH": SRC, **env}
    environ.pop("TROUPER_LOG_LEVEL", None)
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ
    )
    wanted = re.compile(re.escape(until).encode() + rb"[^\n]*\n")
    try:
        assert process.stdout is not None and process.stderr is not None
        ready = b""
        while b"\n" not in ready:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, "the node exited before it was ready"
            ready += chunk
        assert json.loads(ready.split(b"\n")[0])["node"] == name
        data = b""
        while not wanted.search(data):
            chunk = await process.stderr.receive_some(4096)
            assert chunk, f"the node exited before writing {until!r}: {data!r}"
            data += chunk
        process.terminate()
        while chunk := await process.stderr.receive_some(65536):
            data += chunk
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
    return [json.loads(line) for line in data.decode().splitlines() if line]


def check(objects: list[Any], name: str) -> None:
    started = [o for o in objects if o["message"].startswith(f"node {name} listening on")]
    assert len(started) == 1, objects
    line = started[0]
    assert set(line) >= FIELDS
    assert (line["level"], line["logger"], line["node"]) == ("INFO", "trouper.cli", name)
    assert "tcp://127.0.0.1:" in line["message"]
    assert all(o["node"] in (name, None) for o in objects)


@pytest.mark.parametrize(
    ("flags", "env"),
    [(("--log-format", "json"), {"TROUPER_LOG": "text"}), ((), {"TROUPER_LOG": "json"})],
    ids=["flag", "environment"],
)
async def test_node_logs_json_lines(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str]
) -> None:
    """Every stderr line is a JSON object (json.loads would fail otherwise);
    the flag wins over the environment."""
    with trio.fail_after(30):
        objects = await run_node("json-node", tmp_path, *flags, env=env)
    check(objects, "json-node")


async def test_a_bad_log_level_is_a_one_line_error(tmp_path: Path) -> None:
    cookie = tmp_path / "cookie"
    cookie.write_text("c")
    command = [sys.executable, "-m", "trouper", "node", "--cookie-file", str(cookie)]
    with trio.fail_after(30):
        done = await trio.run_process(
            [*command, "--log-level", "LOUD"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "PYTHONPATH": SRC},
        )
    assert done.returncode == 2
    assert done.stderr.decode().strip() == (
        "trouper: unknown log level 'LOUD': use DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )


PROGRAM = """
import logging, trio, trouper

async def main():
    async with trouper.open_node("env-node"):
        logging.getLogger("trouper").warning("hello from %s", "env-node")

trio.run(main)
"""


@pytest.mark.parametrize("value", ["json", ""])
async def test_any_program_logs_json_with_trouper_log_set(value: str) -> None:
    """``TROUPER_LOG=json`` reaches a program that never configures logging:
    its first ``open_node`` does; unset, Python's own last-resort handler
    writes the bare message as before."""
    environ = {**os.environ, "PYTHONPATH": SRC, "TROUPER_LOG": value}
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-c", PROGRAM], capture_stderr=True, env=environ
        )
    lines = done.stderr.decode().splitlines()
    if value:
        objects = [json.loads(x) for x in lines]  # every line is JSON
        line = next(o for o in objects if o["message"].startswith("hello"))
        assert set(line) >= FIELDS
        assert (line["message"], line["node"], line["level"]) == (
            "hello from env-node",
            "env-node",
            "WARNING",
        )
    else:
        assert "hello from env-node" in lines


async def test_a_system_actor_logs_json_with_its_path(tmp_path: Path) -> None:
    """The node dials a seed whose cookie differs: the link actor's failure
    is a JSON line naming the node and the actor that logged it."""
    with trio.fail_after(30):
        async with trouper.open_node(
            "other-cookie", listen="tcp://127.0.0.1:0", cookie=b"not-the-same"
        ) as seed:
            flags = ("--log-format", "json", "--seed", seed.addresses[0])
            objects = await run_node("json-node", tmp_path, *flags, env={}, until="cookie")
    check(objects, "json-node")
    failed = next(o for o in objects if "cookie" in o["message"])
    assert failed["message"].startswith(f"link json-node -> {seed.addresses[0]}: ")
    assert (failed["level"], failed["logger"], failed["node"]) == (
        "ERROR",
        "trouper.remote",
        "json-node",
    )
    assert failed["actor"].startswith("/system/"), failed
