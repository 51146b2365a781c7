"""Handles on a node-shared store (``SharedStore``) and the slot they read.

Handles never close the shared store: their ``aclose()`` (or leaving
``async with``) ends that handle only. They reach the store through a slot
that its host (``_shared.StoreHost``) fills on each (re)start, so a handle
outlives a restart: a call made while the host restarts (torn down, its
backoff, the new open) waits for the restarted store, up to
``_RESTART_WAIT``, rather than fail at once. That matters at node stop:
``/user`` may begin stopping inside such a gap (``fail_actor`` only queues
the failure, and the restart waits out its backoff), and its actors'
``on_stop`` must still reach the store, which closes only when ``/system``
stops, after them.
"""

from __future__ import annotations

import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import trio

from ._api import Store, StoreStatistics
from ._errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from ..runtime import ActorRef, Node
    from ..runtime._cell import Cell

__all__ = ["SharedStore"]

_GROUP = "stores"
#: How long a call waits for a restarting host's new store before it raises
#: the retryable ``StoreUnavailable`` (a restart: the old store's close, the
#: supervisor's backoff, the new open).
_RESTART_WAIT = 5.0


class _Slot:
    """One URL's store on one node: what the host fills and the handles read."""

    def __init__(self, url: str, segment: str, node: weakref.ref[Node]) -> None:
        self.url = url
        self.node = node
        self.scheme = url.partition("://")[0].lower()
        self.segment = segment
        self.store: Store | None = None
        self.host: ActorRef | None = None
        self.failure: BaseException | None = None  # why the last open failed
        self.lock = trio.Lock()  # concurrent first uses open it once
        self._changed = trio.Event()

    def host_alive(self) -> bool:
        """Whether its host actor lives (running, restarting or stopping)."""
        return self._host_cell() is not None

    def _host_cell(self) -> Cell | None:
        node, host = self.node(), self.host
        if node is None or host is None:
            return None
        return node.kernel.cell_at(host.path, host.uid)

    def changed(self) -> None:
        """The host filled or emptied the slot, or its open failed: wake the waiters."""
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Until the host changes the slot or dies (a torn-down host that is
        stopped before its restart runs no code of ours: its death is the news)."""
        cell = self._host_cell()
        if cell is None:
            await trio.lowlevel.checkpoint()
            return
        changed = self._changed
        async with trio.open_nursery() as nursery:

            async def until(wait: Any) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until, changed.wait)
            nursery.start_soon(until, cell.wait_dead)


class SharedStore:
    """A handle on a node's shared store; closing it leaves the store open."""

    def __init__(self, slot: _Slot) -> None:
        self._slot = slot
        self._closed = False

    def __repr__(self) -> str:
        return f"<SharedStore {self._slot.scheme} /system/{_GROUP}/{self._slot.segment}>"

    @property
    def backend(self) -> str:
        return self._slot.scheme

    async def _target(self, stale: Store | None = None, deadline: float | None = None) -> Store:
        """The store to call (not ``stale``, the one just closed under a call);
        while its host restarts, wait for the new one, up to ``deadline``."""
        slot = self._slot
        while True:
            if self._closed:
                raise StoreError(f"this handle on the node's {slot.scheme} store is closed")
            store = slot.store
            if store is not None and store is not stale:
                return store
            if not slot.host_alive():
                raise self._gone()
            if slot.failure is not None:
                # The restarted host could not open it: a retry may find it.
                raise self._gone() from slot.failure
            if deadline is None:
                deadline = trio.current_time() + _RESTART_WAIT
            with trio.move_on_at(deadline):
                await slot.wait_changed()
            if trio.current_time() >= deadline:
                raise self._gone()

    def _gone(self) -> StoreError:
        if self._slot.host_alive():
            return StoreUnavailable(f"the node's {self._slot.scheme} store is restarting")
        return StoreError(f"the node's {self._slot.scheme} store is closed: its node stopped")

    async def _call(self, method: str, *args: Any, **options: Any) -> Any:
        store = self._slot.store
        if store is None or self._closed:
            store = await self._target()
        deadline = None
        while True:
            try:
                return await getattr(store, method)(*args, **options)
            except StoreError as exc:
                if type(exc) is not StoreError or not store.statistics().closed:
                    raise
                # The host closed it under this call (a restart, or the node's
                # stop): nothing was done, so it is made on the restarted store.
                if not self._slot.host_alive():
                    raise self._gone() from exc
            if deadline is None:
                deadline = trio.current_time() + _RESTART_WAIT
            store = await self._target(store, deadline)

    async def append(self, log: str, record: bytes, **options: Any) -> int:
        result: int = await self._call("append", log, record, **options)
        return result

    async def tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        result: list[tuple[int, bytes]] = await self._call("tail", log, n)
        return result

    async def read(self, log: str, after_id: int = 0, limit: int = 100) -> list[tuple[int, bytes]]:
        result: list[tuple[int, bytes]] = await self._call("read", log, after_id, limit)
        return result

    async def trim(self, log: str, keep_last: int) -> int:
        result: int = await self._call("trim", log, keep_last)
        return result

    async def get(self, key: str) -> bytes | None:
        result: bytes | None = await self._call("get", key)
        return result

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await self._call("put", key, value, ttl=ttl)

    async def delete(self, key: str) -> bool:
        result: bool = await self._call("delete", key)
        return result

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, *, ttl: float | None = None
    ) -> bool:
        result: bool = await self._call("compare_and_set", key, expected, new, ttl=ttl)
        return result

    def statistics(self) -> StoreStatistics:
        """The shared store's counts (every handle's calls together)."""
        store = self._slot.store
        if store is None:
            return StoreStatistics(backend=self._slot.scheme, closed=True)
        return store.statistics()

    async def aclose(self) -> None:
        """End this handle; the shared store stays open for its other users."""
        self._closed = True
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
