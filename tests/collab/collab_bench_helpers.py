"""Node processes of ``python -m examples.collab`` and typists for the failover tests."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent.parent
#: The cluster's shared secret (the nodes read it from a file).
COOKIE = "collab-failover-secret"
#: Failure detection tightened as for tests (docs/remote.md): a killed node is
#: declared down within 2.5 s instead of 4.5 s.
FAST_FAILURE = {"heartbeat_interval": 0.2, "acceptable_pause": 1.0, "down_after": 2.5}
#: One typed token: ``<CLIENT:SEQ>``.
TOKEN = re.compile(r"<([a-z0-9]+):(\d+)>")


class CollabNode:
    """One ``python -m examples.collab`` process and what it announced."""

    def __init__(self, tag: str, process: trio.Process, log: Path) -> None:
        self.tag = tag
        self.process = process
        self.log = log
        self.info: dict[str, Any] = {}
        self._buffer = b""

    async def _readline(self) -> str:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some()
            if not chunk:
                raise AssertionError(f"node {self.tag} exited early:\n{self.log.read_text()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def started(self) -> None:
        while "http" not in self.info:
            try:
                self.info = json.loads(await self._readline())
            except ValueError:
                continue

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


@asynccontextmanager
async def collab_node(
    tmp_path: Path, tag: str, store: str, *extra: str
) -> AsyncIterator[CollabNode]:
    cookie = tmp_path / "cookie"
    if not cookie.exists():
        cookie.write_text(COOKIE + "\n")
        cookie.chmod(0o600)
    log = tmp_path / f"{tag}.log"
    command = [sys.executable, "-m", "examples.collab", "--http", "127.0.0.1:0"]
    command += ["--listen", "tcp://127.0.0.1:0", "--cookie-file", str(cookie)]
    command += ["--store", store, *extra]
    for option, value in FAST_FAILURE.items():
        command += [f"--{option.replace('_', '-')}", str(value)]
    with log.open("wb") as stderr:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT
        )
    node = CollabNode(tag, process, log)
    try:
        await node.started()
        yield node
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def token_counts(text: str) -> Counter[str]:
    return Counter(match.group(0) for match in TOKEN.finditer(text))


class Typist:
    """Types ``<NAME:SEQ>`` tokens at the end of a client's text, at a seeded pace."""

    def __init__(self, name: str, client: Any, seed: int) -> None:
        self.name = name
        self.client = client
        self.rng = random.Random(seed)
        self.typed: list[str] = []
        self._progress: dict[int, trio.Event] = {}

    async def reached(self, count: int) -> None:
        """Returns once this typist has typed ``count`` tokens."""
        if len(self.typed) < count:
            await self._progress.setdefault(count, trio.Event()).wait()

    def type_one(self) -> None:
        token = f"<{self.name}:{len(self.typed)}>"
        text = self.client.text
        text.insert(len(text), token)
        self.typed.append(token)
        if (event := self._progress.pop(len(self.typed), None)) is not None:
            event.set()

    async def type_tokens(self, count: int) -> None:
        for _ in range(count):
            self.type_one()
            # a person's pace, a few tokens a second, varied by the seed
            await trio.sleep(self.rng.uniform(0.02, 0.08))
