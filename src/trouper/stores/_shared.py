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

Handles (``_handle``) never close the shared store. They reach it through
a slot that the host fills on each (re)start, so a handle outlives a restart.
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING

import trio

from .._errors import ConfigurationError, TrouperError
from ..actors import Actor
from ._api import Store
from ._errors import StoreError
from ._handle import _GROUP, SharedStore, _Slot
from ._registry import open_store

if TYPE_CHECKING:
    from ..runtime import Node

__all__ = ["DEFAULT_MAX_STORES", "SharedStore", "SharedStores", "configure", "shared_stores"]

#: Distinct store URLs a node holds open at once (``open_node(max_stores=)``):
#: each is a connection pool and a system actor, so a program that builds
#: URLs from data cannot open backends without end.
DEFAULT_MAX_STORES = 16

_HOST_SHUTDOWN = 10.0  # a pool drains its checkouts within this


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
                self.slot.changed()
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
            self.slot.changed()

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
                if slot.store is None and not slot.host_alive():
                    await self._open(slot)
                # (its host restarting: the handle's calls wait for the new store)
                return SharedStore(slot)

    async def _open(self, slot: _Slot) -> None:
        node = self._node()
        if node is None:
            raise StoreError("the node of this store is gone")
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
