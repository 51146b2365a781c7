"""Property: random sequences of log operations (with restarts) match a model.

Each example is one ``trio.run`` (hypothesis and async fixtures do not mix)
over a fresh named memory store or a fresh sqlite file. A ``reopen`` step
closes the store and opens the same URL again, as a restarted node would.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trouper.stores import Store, open_store

LOGS = st.sampled_from(["a", "b", "room/ü"])
SMALL = st.integers(0, 6)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), LOGS, st.binary(max_size=8)),
        st.tuples(st.just("tail"), LOGS, SMALL),
        st.tuples(st.just("read"), LOGS, st.integers(0, 12), SMALL),
        st.tuples(st.just("trim"), LOGS, SMALL),
        st.tuples(st.just("reopen")),
    ),
    max_size=30,
)


class Model:
    """The obvious implementation: a list per log and a counter per log."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.logs: dict[str, list[tuple[int, bytes]]] = {}

    def apply(self, op: tuple[Any, ...]) -> object:
        kind, log, *args = op
        records = self.logs.setdefault(log, [])
        if kind == "append":
            self.last[log] = self.last.get(log, 0) + 1
            records.append((self.last[log], args[0]))
            return self.last[log]
        if kind == "tail":
            return records[max(0, len(records) - args[0]) :]
        if kind == "read":
            return [r for r in records if r[0] > args[0]][: args[1]]
        deleted = max(0, len(records) - args[0])
        del records[:deleted]
        return deleted


async def apply(store: Store, op: tuple[Any, ...]) -> object:
    kind, log, *args = op
    if kind == "append":
        return await store.append(log, *args)
    if kind == "tail":
        return await store.tail(log, *args)
    if kind == "read":
        return await store.read(log, *args)
    return await store.trim(log, *args)


_files = itertools.count()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_log_operations_match_the_model(
    backend: str, tmp_path: Path, ops: list[tuple[Any, ...]]
) -> None:
    if backend == "memory":
        url = f"memory://prop-{uuid.uuid4().hex}"
    else:
        url = f"sqlite:///{tmp_path}/prop-{next(_files)}.db"
    model = Model()

    async def main() -> None:
        with trio.fail_after(10):
            store_cm = open_store(url)
            store = await store_cm.__aenter__()
            try:
                for op in ops:
                    if op[0] == "reopen":
                        await store_cm.__aexit__(None, None, None)
                        store_cm = open_store(url)
                        store = await store_cm.__aenter__()
                        continue
                    assert await apply(store, op) == model.apply(op), op
                for log in model.logs:  # the final state, not just the answers
                    assert await store.read(log, limit=100) == model.logs[log]
            finally:
                await store_cm.__aexit__(None, None, None)

    trio.run(main)
