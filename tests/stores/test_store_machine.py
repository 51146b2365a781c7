"""A hypothesis state machine: any backend behaves like the obvious model.

Logs and key-value entries, compare-and-set with right and wrong
expectations, trims, and restarts (the store closed and its URL opened
again). Each example runs in a Trio run of its own (``TrioThread``) and
uses names under a fresh prefix, so it needs nothing of the backend but the
``store_url`` fixture: the same test runs on every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from trio_thread import TrioThread
from trouper.stores import Store, open_store

NAMES = st.sampled_from(["a", "b", "room/ü"])
VALUES = st.binary(max_size=16)
SMALL = st.integers(0, 6)
STEP_DEADLINE = 10.0


class Holder:
    """The store of one example; ``reopen`` swaps it for a fresh one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.cm: AbstractAsyncContextManager[Store] = open_store(url)
        self.store: Store | None = None

    async def open(self) -> None:
        self.cm = open_store(self.url)
        self.store = await self.cm.__aenter__()

    async def close(self) -> None:
        if self.store is not None:
            self.store = None
            await self.cm.__aexit__(None, None, None)


def machine_for(url: str) -> type[RuleBasedStateMachine]:
    @asynccontextmanager
    async def holding() -> AsyncIterator[Holder]:
        holder = Holder(url)
        await holder.open()
        try:
            yield holder
        finally:
            await holder.close()

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.prefix = f"m{uuid.uuid4().hex[:12]}/"  # a fresh namespace per example
            self.trio: TrioThread[Holder] = TrioThread(holding, STEP_DEADLINE)
            self.logs: dict[str, list[tuple[int, bytes]]] = {}
            self.last: dict[str, int] = {}
            self.kv: dict[str, bytes] = {}

        def call(self, method: str, name: str, *args: Any, **kwargs: Any) -> Any:
            async def go() -> Any:
                store = self.trio.value.store
                assert store is not None
                return await getattr(store, method)(self.prefix + name, *args, **kwargs)

            return self.trio.run(go)

        @rule(log=NAMES, record=VALUES)
        def append(self, log: str, record: bytes) -> None:
            self.last[log] = self.last.get(log, 0) + 1
            self.logs.setdefault(log, []).append((self.last[log], record))
            assert self.call("append", log, record) == self.last[log]

        @rule(log=NAMES, n=SMALL)
        def tail(self, log: str, n: int) -> None:
            records = self.logs.get(log, [])
            assert self.call("tail", log, n) == records[max(0, len(records) - n) :]

        @rule(log=NAMES, after=st.integers(0, 12), limit=SMALL)
        def read(self, log: str, after: int, limit: int) -> None:
            expected = [r for r in self.logs.get(log, []) if r[0] > after][:limit]
            assert self.call("read", log, after, limit) == expected

        @rule(log=NAMES, keep=SMALL)
        def trim(self, log: str, keep: int) -> None:
            records = self.logs.get(log, [])
            gone = max(0, len(records) - keep)
            del records[:gone]
            assert self.call("trim", log, keep) == gone

        @rule(key=NAMES, value=VALUES, ttl=st.sampled_from([None, 3600.0]))
        def put(self, key: str, value: bytes, ttl: float | None) -> None:
            self.kv[key] = value
            self.call("put", key, value, ttl=ttl)

        @rule(key=NAMES)
        def get(self, key: str) -> None:
            assert self.call("get", key) == self.kv.get(key)

        @rule(key=NAMES)
        def delete(self, key: str) -> None:
            assert self.call("delete", key) is (self.kv.pop(key, None) is not None)

        @rule(
            key=NAMES,
            right=st.booleans(),
            wrong=st.none() | VALUES,
            new=st.none() | VALUES,
        )
        def compare_and_set(
            self, key: str, right: bool, wrong: bytes | None, new: bytes | None
        ) -> None:
            current = self.kv.get(key)
            expected = current if right else wrong
            won = expected == current
            if won:
                if new is None:
                    self.kv.pop(key, None)
                else:
                    self.kv[key] = new
            assert self.call("compare_and_set", key, expected, new) is won

        @rule()
        def reopen(self) -> None:
            async def go() -> None:
                await self.trio.value.close()
                await self.trio.value.open()

            self.trio.run(go)

        def teardown(self) -> None:
            try:
                for log, records in self.logs.items():  # the final state, not just answers
                    assert self.call("read", log, 0, 100) == records
                for key, value in self.kv.items():
                    assert self.call("get", key) == value
            finally:
                self.trio.close()

    return StoreMachine


def test_any_backend_matches_the_model(store_url: str) -> None:
    run_state_machine_as_test(
        machine_for(store_url),
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )
