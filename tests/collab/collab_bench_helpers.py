"""Node processes of ``python -m examples.collab`` and typists for the failover tests."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from collab_edge_helpers import FAST_FAILURE as FAST_FAILURE
from collab_edge_helpers import FAST_FAILURE_FLAGS, CollabProcess, collab_process

#: The cluster's shared secret (the nodes read it from a file).
COOKIE = "collab-failover-secret"
#: One typed token: ``<CLIENT:SEQ>``.
TOKEN = re.compile(r"<([a-z0-9]+):(\d+)>")


@asynccontextmanager
async def collab_node(
    tmp_path: Path, tag: str, store: str, *extra: str
) -> AsyncIterator[CollabProcess]:
    """A listening node process on ``store``, in the cluster of ``COOKIE``,
    with failure detection tightened; killed at the end."""
    cookie = tmp_path / "cookie"
    if not cookie.exists():
        cookie.write_text(COOKIE + "\n")
        cookie.chmod(0o600)
    args = ["--listen", "tcp://127.0.0.1:0", "--cookie-file", str(cookie), "--store", store]
    async with collab_process(tmp_path, tag, *args, *FAST_FAILURE_FLAGS, *extra) as node:
        yield node


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
