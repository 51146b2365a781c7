"""``trouper node`` writes its logs as one JSON object per line on stderr,
asked by ``--log-format json`` or by ``TROUPER_LOG=json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

SRC = str(Path(__file__).resolve().parent.parent / "src")
FIELDS = {"timestamp", "level", "logger", "message", "node", "actor", "trace_id", "span_id"}


async def lines_until(stream: trio.abc.ReceiveStream, done: str) -> list[str]:
    """Lines read from ``stream`` until one containing ``done``."""
    data = b""
    while done.encode() not in data:
        chunk = await stream.receive_some(4096)
        assert chunk, f"the node exited before writing {done!r}: {data!r}"
        data += chunk
    return data.decode().splitlines()


async def run_node(name: str, tmp_path: Path, *flags: str, env: dict[str, str]) -> list[Any]:
    """A ``trouper node`` that logs its start and is stopped with SIGTERM;
    returns what it wrote on stderr, each line parsed as JSON."""
    cookie = tmp_path / "cookie"
    cookie.write_text("cli-logs-cookie")
    command = [sys.executable, "-m", "trouper", "node", "--name", name]
    command += ["--listen", "tcp://127.0.0.1:0", "--cookie-file", str(cookie), *flags]
    environ = {**os.environ, "PYTHONPATH": SRC, **env}
    environ.pop("TROUPER_LOG_LEVEL", None)
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        ready = json.loads((await lines_until(process.stdout, "\n"))[0])
        assert ready["node"] == name
        lines = await lines_until(process.stderr, "listening on")
        process.terminate()
        await process.wait()
        rest = await process.stderr.receive_some(65536)
        lines += rest.decode().splitlines()
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
    return [json.loads(line) for line in lines if line]


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
