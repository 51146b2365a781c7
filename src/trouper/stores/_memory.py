"""``memory://``: a store in a dict, for tests and throwaway nodes.

Operations run on the Trio thread without awaiting in the middle, so each is
atomic with respect to other tasks. Each still starts with a checkpoint:
callers may rely on a store call being a place where cancellation and other
tasks get a turn, whatever the backend, and a call cancelled there has had
no effect.

``memory://name`` shares one named dataset within the process: closing the
store and opening the same URL again sees the same data, which is how tests
play "the process restarted" without a file.

Expiry (``ttl=``) reads the wall clock, ``time.time`` unless a test passes
``clock=``: an expired key is treated as absent by every operation, and
dropped when touched or when a later write sweeps the expiry heap, so keys
that expire and are never read again do not pile up.
"""

from __future__ import annotations

import bisect
import heapq
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import attrs
import trio

from trouper._errors import ConfigurationError

from ._api import Store
from ._base import BaseStore, check_name
from ._errors import InvalidStoreArgument, StaleWriter

__all__ = ["MemoryStore", "open_memory_store"]


@attrs.define
class _Log:
    last_id: int = 0  # kept after trim(): ids are never reused
    records: list[tuple[int, bytes]] = attrs.Factory(list)  # sorted by id


@attrs.define
class _Data:
    logs: dict[str, _Log] = attrs.Factory(dict)
    kv: dict[str, bytes] = attrs.Factory(dict)
    #: When each key with a ttl expires (wall-clock seconds).
    expires: dict[str, float] = attrs.Factory(dict)
    #: (expiry, key), possibly stale: an entry counts only if ``expires``
    #: still says the same time for that key.
    heap: list[tuple[float, str]] = attrs.Factory(list)

    def live(self, key: str, now: float) -> bytes | None:
        """The key's value, or None if absent or expired (then dropped)."""
        at = self.expires.get(key)
        if at is not None and at <= now:
            del self.expires[key]
            self.kv.pop(key, None)
        return self.kv.get(key)

    def set(self, key: str, value: bytes | None, expires_at: float | None, now: float) -> None:
        self.sweep(now)
        self.expires.pop(key, None)
        if value is None:
            self.kv.pop(key, None)
            return
        self.kv[key] = value
        if expires_at is not None:
            self.expires[key] = expires_at
            heapq.heappush(self.heap, (expires_at, key))

    def sweep(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self.expires.get(key) == at:
                del self.expires[key]
                self.kv.pop(key, None)


# Named datasets live as long as the process; that is their whole point.
_SHARED: dict[str, _Data] = {}


class MemoryStore(BaseStore):
    """A process-local store; ``MemoryStore("name")`` shares a named dataset."""

    backend = "memory"

    def __init__(self, name: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.name = name
        self.clock = clock
        if name is None:
            self._data = _Data()
        else:
            self._data = _SHARED.setdefault(check_name("memory store name", name), _Data())

    async def _do_append(self, log: str, record: bytes, fence: tuple[str, bytes] | None) -> int:
        await trio.lowlevel.checkpoint()
        # No await between the check and the write: atomic for other tasks.
        if fence is not None and self._data.live(fence[0], self.clock()) != fence[1]:
            raise StaleWriter(f"{log}: {fence[0]!r} no longer holds this writer's token")
        entry = self._data.logs.setdefault(log, _Log())
        entry.last_id += 1
        entry.records.append((entry.last_id, record))
        return entry.last_id

    async def _do_tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        await trio.lowlevel.checkpoint()
        entry = self._data.logs.get(log)
        if entry is None or n == 0:
            return []
        return entry.records[-n:]

    async def _do_read(self, log: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
        await trio.lowlevel.checkpoint()
        entry = self._data.logs.get(log)
        if entry is None:
            return []
        start = bisect.bisect_right(entry.records, after_id, key=lambda r: r[0])
        return entry.records[start : start + limit]

    async def _do_trim(self, log: str, keep_last: int) -> int:
        await trio.lowlevel.checkpoint()
        entry = self._data.logs.get(log)
        if entry is None:
            return 0
        excess = max(0, len(entry.records) - keep_last)
        del entry.records[:excess]
        return excess

    def _expiry(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    async def _do_get(self, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self._data.live(key, self.clock())

    async def _do_put(self, key: str, value: bytes, ttl: float | None) -> None:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        self._data.set(key, value, self._expiry(now, ttl), now)

    async def _do_delete(self, key: str) -> bool:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        existed = self._data.live(key, now) is not None
        self._data.set(key, None, None, now)
        return existed

    async def _do_compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, ttl: float | None
    ) -> bool:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        if self._data.live(key, now) != expected:
            return False
        self._data.set(key, new, self._expiry(now, ttl), now)
        return True

    async def _do_close(self) -> None:
        await trio.lowlevel.checkpoint()


def open_memory_store(url: str) -> AbstractAsyncContextManager[Store]:
    """``memory://`` (a fresh private store) or ``memory://name`` (shared by name)."""
    name = url.partition("://")[2] or None
    try:
        store = MemoryStore(name)  # a bad name fails here, at open_store() time
    except (InvalidStoreArgument, TypeError) as exc:
        raise ConfigurationError(f"bad memory store URL: {exc}") from None

    @asynccontextmanager
    async def manage() -> AsyncIterator[Store]:
        async with store:
            yield store

    return manage()
