"""Node-shared stores: one store per URL per node, held by /system/stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import trio
import trio.lowlevel
import trio.testing

import trouper
from trouper._errors import ConfigurationError
from trouper.pools import PoolPolicy, ResourcePool, open_resource_pool
from trouper.runtime import child_cells, fail_actor, restart_actor
from trouper.stores import (
    MemoryStore,
    SharedStore,
    Store,
    StoreError,
    StoreUnavailable,
    open_store,
    register_store,
)
from trouper.stores._registry import _FACTORIES

T = TypeVar("T")


def hosts(node: trouper.Node) -> list[str]:
    """The paths of the node's store hosts (the admin tree shows the same)."""
    group = node.kernel.cell_at("/system/stores")
    return [] if group is None else [cell.ref.path for cell in child_cells(group)]


async def test_concurrent_first_uses_open_one_store(store_url: str) -> None:
    scheme = store_url.partition("://")[0]
    with trio.fail_after(10):
        async with trouper.open_node(store=store_url) as node:
            assert hosts(node) == []  # nothing opened before first use
            handles: list[Store] = []

            async def use() -> None:
                handles.append(await node.store())

            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(use)
            assert hosts(node) == [f"/system/stores/{scheme}-1"]
            assert all(isinstance(h, SharedStore) and isinstance(h, Store) for h in handles)
            for i, handle in enumerate(handles):
                assert await handle.append("log", b"%d" % i) == i + 1
            # One store behind them all: the counts are the shared store's.
            assert handles[0].statistics().appends == 20
            assert await (await node.store(store_url)).tail("log", 1) == [(20, b"19")]
            assert len(hosts(node)) == 1  # the explicit URL is the same store


async def test_closing_a_handle_leaves_the_store_open(store_url: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node(store=store_url) as node:
            async with await node.store() as first:
                await first.put("k", b"v")
            with pytest.raises(StoreError, match=r"handle .* is closed"):
                await first.get("k")
            second = await node.store()
            assert await second.get("k") == b"v"
            assert not second.statistics().closed
        with pytest.raises(StoreError, match="closed: its node stopped") as info:
            await second.get("k")
        assert not info.value.is_retryable
        assert second.statistics().closed


class Writer(trouper.Actor):
    """Uses the node's store from on_start to on_stop, as a room does."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def on_start(self) -> None:
        self.store = await self.ctx.store()
        await self.store.append(self.name, b"started")

    async def on_stop(self) -> None:
        await self.store.append(self.name, b"stopped")  # the store outlives its users


async def test_actors_share_it_and_it_closes_after_them(store_url: str) -> None:
    with trio.fail_after(20):
        async with trouper.open_node(store=store_url) as node:
            for i in range(50):
                await node.spawn(Writer, f"w{i}")
            assert len(hosts(node)) == 1
            assert (await node.store()).statistics().appends == 50
        async with open_store(store_url) as store:  # the data is in the backend
            for i in range(50):
                assert [r for _, r in await store.tail(f"w{i}", 5)] == [b"started", b"stopped"]


async def test_bad_urls_fail_where_given() -> None:
    with pytest.raises(ConfigurationError, match="no store registered for nosuch://"):
        async with trouper.open_node(store="nosuch://x"):
            pass
    with pytest.raises(ConfigurationError, match="store URL"):
        async with trouper.open_node(store=42):  # type: ignore[arg-type]
            pass
    with pytest.raises(ConfigurationError, match="max_stores"):
        async with trouper.open_node(max_stores=0):
            pass
    with trio.fail_after(10):
        async with trouper.open_node() as node:
            with pytest.raises(ConfigurationError, match="malformed store URL"):
                await node.store("not a url")
            assert hosts(node) == []


async def test_the_number_of_urls_is_bounded(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with trouper.open_node(max_stores=2) as node:
            a = await node.store(f"sqlite:///{tmp_path}/a.db")
            await node.store("memory://")
            with pytest.raises(StoreError, match=r"max_stores=2"):
                await node.store(f"sqlite:///{tmp_path}/c.db")
            assert await a.append("log", b"still fine") == 1
            assert await (await node.store("memory://")).tail("x", 1) == []  # known URL: fine


async def test_a_failed_open_reports_the_stores_error_and_frees_its_place(
    tmp_path: Path,
) -> None:
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database, just text" * 100)
    with trio.fail_after(10):
        async with trouper.open_node(max_stores=1) as node:
            for _ in range(2):  # the failure takes no place: the bound is not used up
                with pytest.raises(StoreError) as info:
                    await node.store(f"sqlite:///{not_a_db}")
                assert type(info.value) is StoreError and "garbage.db" in str(info.value)
            assert hosts(node) == []
            assert await (await node.store()).append("log", b"x") == 1


async def test_a_restarted_host_reopens_and_handles_keep_working(store_url: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node(store=store_url) as node:
            handle = await node.store()
            await handle.append("log", b"before")
            (path,) = hosts(node)
            cell = node.kernel.cell_at(path)
            assert cell is not None
            await restart_actor(cell)
            assert hosts(node) == [path]
            # A new store object: its counts start again; the data is the backend's.
            assert handle.statistics().appends == 0
            assert await handle.append("log", b"after") == 2
            assert await (await node.store()).tail("log", 2) == [(1, b"before"), (2, b"after")]


async def test_trouper_node_defaults_to_sqlite_in_its_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trouper.cli import _parser, default_store

    args = _parser().parse_args(["node", "--cookie-file", "c"])
    assert args.data_dir == Path(".trouper") and args.store is None
    monkeypatch.chdir(tmp_path)
    url = default_store(args.data_dir)
    assert url == f"sqlite:///{tmp_path}/.trouper/store.db"
    with trio.fail_after(10):
        async with trouper.open_node(store=url) as node:
            assert not (tmp_path / ".trouper").exists()  # opened on first use only
            await (await node.store()).put("k", b"v")
    assert (tmp_path / ".trouper" / "store.db").is_file()
    args = _parser().parse_args(["node", "--cookie-file", "c", "--store", "memory://"])
    assert args.store == "memory://"


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Retry while the host restarts (under the caller's deadline)."""
    while True:
        try:
            return await call()
        except StoreUnavailable as exc:
            assert exc.is_retryable
            await trio.sleep(0.01)


async def test_a_crashed_host_is_restarted_and_reopens(store_url: str) -> None:
    with trio.fail_after(10):
        async with trouper.open_node(store=store_url) as node:
            handle = await node.store()
            await handle.append("log", b"before")
            (path,) = hosts(node)
            cell = node.kernel.cell_at(path)
            assert cell is not None
            fail_actor(cell, RuntimeError("the pool's run() failed"))
            assert await retrying(lambda: handle.append("log", b"after")) == 2
            tail = await retrying(lambda: handle.tail("log", 2))
            assert tail == [(1, b"before"), (2, b"after")]
            assert hosts(node) == [path]


async def test_a_node_stopping_while_its_host_restarts_keeps_the_store_for_on_stop(
    store_url: str,
) -> None:
    # fail_actor only queues the failure: the node begins to stop /user while
    # the host is torn down or waits out its restart backoff. The users'
    # on_stop calls wait for the restarted store instead of failing.
    with trio.fail_after(20):
        async with trouper.open_node(store=store_url) as node:
            for i in range(10):
                await node.spawn(Writer, f"w{i}")
            (path,) = hosts(node)
            cell = node.kernel.cell_at(path)
            assert cell is not None
            fail_actor(cell, RuntimeError("the pool failed"))
        assert node.kernel.restarts == 1
    async with open_store(store_url) as store:
        for i in range(10):
            assert [r for _, r in await store.tail(f"w{i}", 5)] == [b"started", b"stopped"]


async def test_a_cancelled_first_use_still_opens_it_once() -> None:
    entered, release = trio.Event(), trio.Event()
    opened: list[str] = []

    @asynccontextmanager
    async def slow(url: str) -> AsyncIterator[Store]:
        opened.append(url)
        entered.set()
        await release.wait()  # a backend still connecting
        async with MemoryStore() as store:
            yield store

    assert register_store("slowtest", slow) is None
    try:
        with trio.fail_after(10):
            async with trouper.open_node(store="slowtest://x") as node:
                cancelled = trio.Event()

                async def first_use(scope: trio.CancelScope) -> None:
                    with scope:
                        await node.store()
                    if scope.cancelled_caught:
                        cancelled.set()

                scope = trio.CancelScope()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(first_use, scope)
                    await entered.wait()
                    scope.cancel()  # while the open is in progress
                    await trio.testing.wait_all_tasks_blocked()
                    release.set()
                await cancelled.wait()  # the caller was cancelled...
                assert len(hosts(node)) == 1  # ... and the store opened all the same
                assert await (await node.store()).append("log", b"x") == 1
                assert opened == ["slowtest://x"]
    finally:
        _FACTORIES.pop("slowtest")


class PooledMemoryStore(MemoryStore):
    """A memory store whose every call borrows a member of a real ResourcePool,
    as the postgres and redis backends borrow connections."""

    def __init__(self, name: str, pool: ResourcePool[int]) -> None:
        super().__init__(name)
        self.pool = pool

    async def _do_append(self, log: str, record: bytes, fence: tuple[str, bytes] | None) -> int:
        async with self.pool.checkout():
            await trio.lowlevel.checkpoint()  # held across a checkpoint, as a query would
            return await super()._do_append(log, record, fence)


async def test_a_backend_with_a_pool_runs_its_pool_in_the_host() -> None:
    # The backend's context manager runs a nursery (the pool's run()): the host
    # holds it in its own task for its whole life, and drains it at node stop.
    members = {"opened": 0, "closed": 0}

    async def open_member() -> int:
        members["opened"] += 1
        await trio.lowlevel.checkpoint()
        return members["opened"]

    async def close_member(member: int) -> None:
        members["closed"] += 1
        await trio.lowlevel.checkpoint()

    @asynccontextmanager
    async def pooled(url: str) -> AsyncIterator[Store]:
        policy = PoolPolicy(min=1, max=4)
        async with (
            open_resource_pool(
                "pooledtest", open=open_member, close=close_member, policy=policy
            ) as pool,
            PooledMemoryStore(url.partition("://")[2], pool) as store,
        ):
            yield store

    assert register_store("pooledtest", pooled) is None
    name = f"pooledtest://p{id(members)}"
    try:
        with trio.fail_after(20):
            async with trouper.open_node(store=name) as node:
                for i in range(30):
                    await node.spawn(Writer, f"w{i}")
                (path,) = hosts(node)
                assert path.startswith("/system/stores/pooledtest-")
                cell = node.kernel.cell_at(path)
                assert cell is not None
                fail_actor(cell, RuntimeError("the pool failed"))  # closes it, opens another
                handle = await node.store()
                assert await retrying(lambda: handle.append("log", b"after restart")) == 1
                assert 1 <= members["opened"] - members["closed"] <= 4
            assert members["opened"] == members["closed"]  # drained and closed at stop
            async with open_store(f"memory://p{id(members)}") as store:
                assert [r for _, r in await store.tail("w0", 2)] == [b"started", b"stopped"]
    finally:
        _FACTORIES.pop("pooledtest")
