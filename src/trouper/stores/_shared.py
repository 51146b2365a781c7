"""Node-shared stores: one store (so one backend connection pool) per URL per node.

``await node.store(url)`` (or ``ctx.store(url)`` in an actor) returns a
handle on the node's one store for ``url``, opened on first use. Each store
is held by a supervised system actor, ``/system/stores/<scheme>-<n>``, so it
shows in the actor tree and is closed when ``/system`` stops: after every
``/user`` actor (its users) has run its ``on_stop``. The store is entered
in a task of that actor (``ctx.start_soon``) and held there until the actor
stops, so a backend whose context manager runs a nursery (a connection
pool's ``run()``) lives in the actor's own nursery; if it fails, the actor
fails and its supervisor restarts it, which opens the store again.

Handles never close the shared store: their ``aclose()`` (or leaving
``async with``) ends that handle only. They reach the store through a slot
that the host fills on each (re)start, so a handle outlives a restart.
"""

from __future__ import annotations

import itertools
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import trio

from .._errors import ConfigurationError, TrouperError
from ..actors import Actor
from ._api import Store, StoreStatistics
from ._errors import StoreError, StoreUnavailable
from ._registry import open_store

if TYPE_CHECKING:
    from ..runtime import ActorRef, Node

__all__ = ["DEFAULT_MAX_STORES", "SharedStore", "SharedStores", "configure", "shared_stores"]

#: Distinct store URLs a node holds open at once (``open_node(max_stores=)``):
#: each is a connection pool and a system actor, so a program that builds
#: URLs from data cannot open backends without end.
DEFAULT_MAX_STORES = 16

_GROUP = "stores"
_HOST_SHUTDOWN = 10.0  # a pool drains its checkouts within this


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

    def host_alive(self) -> bool:
        """Whether its host actor lives (running, restarting or stopping)."""
        node, host = self.node(), self.host
        return (
            node is not None and host is not None and bool(node.kernel.cell_at(host.path, host.uid))
        )


class StoreHost(Actor):
    """``/system/stores/<scheme>-<n>``: opens one store and holds it until it stops."""

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot
        self._held = False

    async def on_start(self) -> None:
        # Fresh for each start: a restart must not find the last one's release.
        self._release = trio.Event()
        self._closed = trio.Event()
        self._held = False
        self.slot.failure = None
        opened = trio.Event()
        self.ctx.start_soon(self._hold, opened)
        await opened.wait()
        if self.slot.failure is not None:
            raise self.slot.failure

    async def _hold(self, opened: trio.Event) -> None:
        held: Store | None = None
        try:
            async with open_store(self.slot.url) as store:
                held = self.slot.store = store
                self._held = True
                opened.set()
                await self._release.wait()
        except Exception as exc:
            if opened.is_set():
                raise  # a failure of the open store: the actor fails and restarts
            self.slot.failure = exc  # on_start raises it: the caller sees why
            opened.set()
        finally:
            # A restarted host may have filled the slot already: leave its store.
            if held is not None and self.slot.store is held:
                self.slot.store = None
            self._closed.set()

    async def on_stop(self) -> None:
        if self._held:
            self._release.set()
            await self._closed.wait()


class SharedStores:
    """A node's shared stores (``node.stores``), by URL."""

    def __init__(self, node: Node, default_url: str, max_stores: int) -> None:
        self._node = weakref.ref(node)
        self.default_url = default_url
        self.max_stores = max_stores
        self.slots: dict[str, _Slot] = {}
        self._numbers = itertools.count(1)

    async def get(self, url: str | None) -> Store:
        url = self.default_url if url is None else url
        while True:
            slot = self.slots.get(url)
            if slot is None:
                open_store(url)  # a malformed URL or unknown scheme fails here, opening nothing
                if len(self.slots) >= self.max_stores:
                    raise StoreError(
                        f"this node has {len(self.slots)} shared stores open, its limit"
                        f" (open_node(max_stores={self.max_stores})); cannot open another"
                    )
                segment = f"{url.partition('://')[0].lower()}-{next(self._numbers)}"
                slot = self.slots[url] = _Slot(url, segment, self._node)
            async with slot.lock:
                if self.slots.get(url) is not slot:
                    continue  # its open failed meanwhile: start over
                if slot.store is None:
                    await self._open(slot)
                return SharedStore(slot)

    async def _open(self, slot: _Slot) -> None:
        node = self._node()
        if node is None:
            raise StoreError("the node of this store is gone")
        if slot.host_alive():
            raise StoreUnavailable(f"the node's {slot.scheme} store is restarting")
        try:
            # Shielded: the store is shared, so one caller's cancellation must
            # not leave it half-opened for the others waiting on the lock (the
            # backend's own connect timeout bounds the open). The cancelled
            # caller sees its Cancelled at the checkpoint below.
            with trio.CancelScope(shield=True):
                slot.host = await node.kernel.spawn_system(
                    _GROUP, StoreHost, slot, segment=slot.segment, shutdown=_HOST_SHUTDOWN
                )
        except BaseException as exc:
            if self.slots.get(slot.url) is slot:
                del self.slots[slot.url]
            if slot.failure is not None and isinstance(exc, TrouperError):
                raise slot.failure from None  # the store's own error, not SpawnRefused
            if isinstance(exc, TrouperError) and not isinstance(exc, StoreError):
                raise StoreError(f"cannot open the node's {slot.scheme} store: {exc}") from exc
            raise
        await trio.lowlevel.checkpoint_if_cancelled()


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

    def _target(self) -> Store:
        if self._closed:
            raise StoreError(f"this handle on the node's {self._slot.scheme} store is closed")
        store = self._slot.store
        if store is None:
            raise self._gone()
        return store

    def _gone(self) -> StoreError:
        if self._slot.host_alive():
            return StoreUnavailable(f"the node's {self._slot.scheme} store is restarting")
        return StoreError(f"the node's {self._slot.scheme} store is closed: its node stopped")

    async def _call(self, method: str, *args: Any, **options: Any) -> Any:
        store = self._target()
        try:
            return await getattr(store, method)(*args, **options)
        except StoreError as exc:
            if type(exc) is StoreError and store.statistics().closed:
                # The host closed it under this call: nothing was done, and
                # after a restart a retry finds the store again.
                raise self._gone() from exc
            raise

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


def _check_max(max_stores: object) -> int:
    if isinstance(max_stores, bool) or not isinstance(max_stores, int) or max_stores < 1:
        raise ConfigurationError(f"max_stores must be an int >= 1, not {max_stores!r}")
    return max_stores


def configure(node: Node, store: str, max_stores: int) -> None:
    """``open_node(store=, max_stores=)``: the node's default URL and its bound."""
    if not isinstance(store, str):
        raise ConfigurationError(f"store must be a store URL (str), not {type(store).__name__}")
    open_store(store)  # malformed or unknown: refused when the node opens
    node.stores = SharedStores(node, store, _check_max(max_stores))


def shared_stores(node: Node) -> SharedStores:
    """The node's shared stores (a node made without ``open_node``: memory://)."""
    if node.stores is None:
        node.stores = SharedStores(node, "memory://", DEFAULT_MAX_STORES)
    stores: SharedStores = node.stores
    return stores
