"""One subscriber's bounded queue of document events, pure (sans-IO).

The ``DocumentActor`` pushes every update and awareness change into the
queue of each subscriber and never waits for one; the subscriber's stream
pops at its own pace. A subscriber that falls behind is dealt with here:

1. over ``max_events`` queued events or ``max_bytes`` queued bytes, the
   queued updates are merged into one (``pycrdt.merge_updates``) and the
   awareness updates into one (latest clock per client): a slow subscriber
   gets fewer, larger messages and loses nothing;
2. if the merged updates are still over ``resync_bytes``, or the oldest
   queued event has waited ``max_lag`` seconds, its backlog is dropped and it
   gets one "resync" (the document's full state, taken when it is popped)
   instead: later updates are covered by that resync, so they are not
   queued at all until it has been popped.

Applying what a subscriber pops, in order, to a copy of the document (a
resync being the full state at the moment it is popped) gives the
document's state: tests/collab/test_collab_sync_fanout.py checks it with
hypothesis. Time is passed in (``now``) by the caller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import pycrdt

from . import _awareness

#: Events a subscriber may have queued before they are merged (the
#: Subscribe message's ``queue`` asks for fewer; never more than this).
MAX_QUEUE_EVENTS = 1024
#: Bytes queued for one subscriber before they are merged.
MAX_QUEUE_BYTES = 1 << 20
#: Merged updates still over this many bytes: resync instead (the full
#: state is smaller than a long tail of edits of the same text).
RESYNC_BYTES = 4 << 20
#: A subscriber whose oldest queued event is this old (seconds) is resynced.
MAX_LAG = 10.0

Kind = Literal["update", "awareness", "resync"]


@dataclass(frozen=True, slots=True)
class Item:
    kind: Kind
    data: bytes  # empty for "resync": the caller takes the document's state
    origin: str
    version: int
    at: float  # when it was queued (the oldest, for a merged item)


class SubscriberQueue:
    def __init__(
        self,
        max_events: int = 256,
        max_bytes: int = MAX_QUEUE_BYTES,
        resync_bytes: int = RESYNC_BYTES,
        max_lag: float = MAX_LAG,
    ) -> None:
        self.max_events = max(2, min(max_events, MAX_QUEUE_EVENTS))
        self.max_bytes = max_bytes
        self.resync_bytes = resync_bytes
        self.max_lag = max_lag
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._resync: Item | None = None  # a resync waiting to be popped
        self.merged = 0  # how many times the backlog was merged
        self.resyncs = 0  # how many times it was replaced by a resync

    def __len__(self) -> int:
        return len(self._items) + (self._resync is not None)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def push(self, kind: Kind, data: bytes, origin: str, version: int, now: float) -> None:
        """Queue one event (never blocks, never raises for a full queue)."""
        if kind == "resync":
            self._to_resync(version, now)
            return
        if kind == "update" and self._resync is not None:
            return  # the pending resync, taken when popped, includes it
        self._items.append(Item(kind, data, origin, version, now))
        self._bytes += len(data)
        if len(self._items) > self.max_events or self._bytes > self.max_bytes:
            self._merge()
            if self._update_bytes() > self.resync_bytes:
                self._to_resync(version, now)
        if self._items and now - self._items[0].at > self.max_lag:
            self._to_resync(version, now)

    def pop(self, now: float) -> Item | None:
        """The next event to send, or None if there is none."""
        if self._items and now - self._items[0].at > self.max_lag:
            self._to_resync(self._items[-1].version, now)
        if self._resync is not None:
            item, self._resync = self._resync, None
            return item
        if not self._items:
            return None
        item = self._items.popleft()
        self._bytes -= len(item.data)
        return item

    def _update_bytes(self) -> int:
        return sum(len(item.data) for item in self._items if item.kind == "update")

    def _to_resync(self, version: int, now: float) -> None:
        """Drop the queued updates; a resync takes their place (awareness
        changes stay: they are not part of the document's state)."""
        awareness = [item for item in self._items if item.kind == "awareness"]
        self._items = deque()
        if awareness:  # merged, and dated now: the lag clock starts again
            data = _awareness.merge([item.data for item in awareness])
            self._items.append(Item("awareness", data, "", awareness[-1].version, now))
        self._bytes = sum(len(item.data) for item in self._items)
        if self._resync is None:
            self.resyncs += 1
            self._resync = Item("resync", b"", "", version, now)

    def _merge(self) -> None:
        updates = [item for item in self._items if item.kind == "update"]
        awareness = [item for item in self._items if item.kind == "awareness"]
        merged: deque[Item] = deque()
        if updates:
            origins = {item.origin for item in updates}
            data = pycrdt.merge_updates(*(item.data for item in updates))
            origin = updates[0].origin if len(origins) == 1 else ""
            merged.append(Item("update", data, origin, updates[-1].version, updates[0].at))
        if awareness:
            data = _awareness.merge([item.data for item in awareness])
            origins = {item.origin for item in awareness}
            origin = awareness[0].origin if len(origins) == 1 else ""
            merged.append(Item("awareness", data, origin, awareness[-1].version, awareness[0].at))
        self._items = merged
        self._bytes = sum(len(item.data) for item in merged)
        self.merged += 1
