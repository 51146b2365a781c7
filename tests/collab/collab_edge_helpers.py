"""Shared by the edge's tests: a collab node on a real store, serving."""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from examples.collab._app import CollabSettings, open_collab

import trouper
from trouper.web import GatewayHandle

#: The bound of every I/O step of these tests (seconds).
STEP = 15
#: Failure detection tightened as for tests (docs/remote.md): a killed node is
#: declared down within 2.5 s instead of 4.5 s. As ``open_node`` options, and
#: as the flags of ``python -m examples.collab``.
FAST_FAILURE = {"heartbeat_interval": 0.2, "acceptable_pause": 1.0, "down_after": 2.5}
FAST_FAILURE_FLAGS = [
    arg
    for option, value in FAST_FAILURE.items()
    for arg in (f"--{option.replace('_', '-')}", str(value))
]


@asynccontextmanager
async def collab_node(
    store: Path | str, **settings: object
) -> AsyncIterator[tuple[trouper.Node, GatewayHandle]]:
    """One node with the whole collab app (sessions, state sync, hubs,
    gateway) on the sqlite file ``store`` (or a store URL)."""
    url = store if isinstance(store, str) else f"sqlite:///{store}"
    config = CollabSettings(**settings)  # type: ignore[arg-type]
    async with trouper.open_node(store=url) as node, open_collab(node, config) as gateway:
        yield node, gateway


ROOT = Path(__file__).resolve().parents[2]


class CollabProcess:
    """A ``python -m examples.collab`` node: its JSON line, and its log."""

    def __init__(self, tag: str, process: trio.Process, log: Path) -> None:
        self.tag = tag
        self.process = process
        self.log = log
        self.info: dict[str, Any] = {}

    @property
    def http(self) -> str:
        return str(self.info["http"]).rstrip("/")

    @property
    def address(self) -> str:
        return str(self.info["addresses"][0])

    @property
    def node_id(self) -> str:
        return str(self.info["node"])

    def kill(self) -> None:
        """``kill -9``: no goodbye to the cluster, nothing flushed."""
        self.process.kill()

    async def started(self) -> dict[str, Any]:
        """The JSON line it prints once serving."""
        assert self.process.stdout is not None
        buffer = b""
        while b"\n" not in buffer:
            chunk = await self.process.stdout.receive_some()
            if not chunk:
                raise AssertionError(
                    f"collab node {self.tag} exited early:\n{self.log.read_text()}"
                )
            buffer += chunk
        self.info = json.loads(buffer.partition(b"\n")[0])
        return self.info


@asynccontextmanager
async def collab_process(tmp_path: Path, tag: str, *args: str) -> AsyncIterator[CollabProcess]:
    """Start a node process (``args`` after ``--http 127.0.0.1:0``); killed at the end."""
    log = tmp_path / f"{tag}.log"
    command = [sys.executable, "-m", "examples.collab", "--http", "127.0.0.1:0", *args]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    with log.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=stderr, cwd=tmp_path, env=env
        )
    try:
        node = CollabProcess(tag, process, log)
        await node.started()
        yield node
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
