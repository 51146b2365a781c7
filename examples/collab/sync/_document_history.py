"""The ``DocumentActor``'s history handlers: the operations in its log since
a version, and named snapshots (save, list, restore).

A mixin of ``DocumentActor`` (``_document``), kept apart for size: these
handlers read the actor's log and the store, and write through the actor's
one path for an update (``_update``: broadcast, then persist).
"""

# No ``from __future__ import annotations``: handler annotations are read at runtime.
import time
from typing import TYPE_CHECKING

import pycrdt

import trouper
from trouper.stores import Store

from . import _history
from ._protocol import (
    DocReset,
    ListSnapshots,
    Operation,
    Operations,
    OperationsSince,
    RestoreSnapshot,
    SaveSnapshot,
    SnapshotInfo,
    SnapshotList,
    Updated,
)

#: Operations one ``OperationsSince`` returns at most.
MAX_OPERATIONS = 1000


class HistoryHandlers:
    # What the DocumentActor provides.
    doc: pycrdt.Doc
    doc_id: str
    store: Store
    last_sequence_nr: int

    if TYPE_CHECKING:

        def _touch(self) -> None: ...
        def _refuse(self, exc: trouper.TrouperError) -> None: ...
        async def _update(self, update: bytes, origin: str) -> int: ...
        async def read_events(self, after_id: int, limit: int) -> list[tuple[int, object]]: ...

    @trouper.handler
    async def operations(self, msg: OperationsSince) -> Operations:
        self._touch()
        limit = max(1, min(msg.limit, MAX_OPERATIONS))
        found: list[Operation] = []
        after = max(0, msg.version)
        while len(found) < limit:  # lock events are in the log too: skip them
            events = await self.read_events(after, limit)
            for seq, event in events:
                if isinstance(event, Updated):
                    found.append(Operation(seq, event.update))
                elif isinstance(event, DocReset):
                    found.clear()  # what came before the reset is not this document
                after = seq
            if len(events) < limit:
                break
        return Operations(found[:limit])

    @trouper.handler
    async def save_named(self, msg: SaveSnapshot) -> SnapshotInfo | None:
        self._touch()
        update = self.doc.get_update()
        info = SnapshotInfo(msg.name, self.last_sequence_nr, time.time(), len(update))
        try:
            await _history.save(self.store, self.doc_id, info, update)
        except trouper.InvalidArgument as exc:
            self._refuse(exc)
            return None
        return info

    @trouper.handler
    async def list_named(self, msg: ListSnapshots) -> SnapshotList:
        self._touch()
        return SnapshotList(await _history.listing(self.store, self.doc_id))

    @trouper.handler
    async def restore_named(self, msg: RestoreSnapshot) -> int | None:
        """A new update on the live document that makes "content" the saved
        text (delete, then insert, in one transaction): every client applies
        it like any other edit, and converges."""
        self._touch()
        try:
            saved = await _history.load(self.store, self.doc_id, msg.name)
        except trouper.InvalidArgument as exc:
            self._refuse(exc)
            return None
        if saved is None:
            self._refuse(trouper.ActorNotFound(f"{self.doc_id!r} has no snapshot {msg.name!r}"))
            return None
        old = pycrdt.Doc()
        old.apply_update(saved.update)
        text = str(old.get("content", type=pycrdt.Text))
        before = self.doc.get_state()
        content = self.doc.get("content", type=pycrdt.Text)
        with self.doc.transaction(origin="restore"):
            del content[:]
            content += text
        return await self._update(self.doc.get_update(before), f"restore:{msg.name}")
