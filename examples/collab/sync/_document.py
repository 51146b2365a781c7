"""``DocumentActor``: one collaborative document in the whole cluster.

It owns one ``pycrdt.Doc`` (the editor's text is its root ``Text``
"content"); every update is applied there, by this one writer. It is a
``PersistentActor`` (``persistence_id = "doc/<id>"``): its log holds the
raw Yjs updates as clients sent them, and its snapshots the full compacted
state (``doc.get_update()``) with the lock table, never plain text (a
document rebuilt from text would duplicate the text of every client that
reconnects with its own copy). Recovery is the latest snapshot plus the
updates after it; the fenced single-writer claim of ``PersistentActor``
keeps a stale owner (a node thought dead) from writing after a failover.

An update is applied, then handed to every subscriber (``Subscribe``) at
once, then persisted, and only then acknowledged (``Applied``): latency for
the others, durability for the sender. A refused request (a malformed
update, a stale lock token, an oversized one) is answered with
``trouper.InvalidArgument`` through ``ctx.refuse``: the actor does not fail,
nothing is stored, and nobody else notices.

Subscribers never slow the document: each has a bounded queue
(``_fanout.SubscriberQueue``) that merges a backlog and, past its bounds,
replaces it with one "resync". Locks are leases (``_locks``) whose grants,
renewals and releases are events of the log, so their fencing tokens keep
increasing across a failover. A document with no subscriber and no call
for ``passivate_after`` seconds saves a snapshot and stops; the next
``OpenDocument`` reloads it.
"""

# No ``from __future__ import annotations``: handler annotations are read at runtime.
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pycrdt
import trio

import trouper
from trouper.stores import Store, StoreError

from .. import _shared
from . import _history
from ._awareness import AwarenessError, AwarenessTable
from ._document_history import HistoryHandlers
from ._document_locks import LockHandlers, granted
from ._fanout import SubscriberQueue
from ._locks import Lease, LockError, LockTable
from ._messages import (
    Applied,
    ApplyAwareness,
    ApplyUpdate,
    DocEvent,
    DropOrigin,
    GetAwareness,
    Joined,
    JoinState,
    Subscribe,
    SyncReply,
    SyncRequest,
)
from ._protocol import (
    DeleteDocument,
    DocReset,
    DocState,
    DocStats,
    GetStats,
    LockGranted,
    LockReleased,
    Passivate,
    Updated,
)
from ._rate import RateWindow

log = logging.getLogger("examples.collab.sync")

#: Bytes of one Yjs update a client may send: the gateway's message bound
#: (``examples.collab._edge.MAX_MESSAGE_BYTES``), because a client back from a
#: long time offline sends everything it typed as one SyncStep2.
MAX_UPDATE_BYTES = 8 << 20
#: The Yjs update that changes nothing (no structs, no deletions): not stored.
EMPTY_UPDATE = b"\x00\x00"
#: Subscribe streams on one document (a hub per node subscribes once).
MAX_SUBSCRIBERS = 1024
#: A document idle this long (no subscriber, no call) passivates (seconds).
PASSIVATE_AFTER = 60.0
#: Events between two automatic snapshots.
SNAPSHOT_EVERY = 500


@trouper.message(name="collab-sync:IdleCheck")
class _IdleCheck(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab-sync:AwarenessSweep")
class _AwarenessSweep(msgspec.Struct, frozen=True):
    pass


#: How often a document with awareness states looks for expired ones (seconds).
AWARENESS_SWEEP = 5.0


@dataclass(eq=False)
class _Subscriber:
    queue: SubscriberQueue
    wake: trio.Event = field(default_factory=trio.Event)


class DocumentActor(HistoryHandlers, LockHandlers, trouper.PersistentActor):
    def __init__(
        self,
        doc_id: str,
        store_url: str | None = None,
        passivate_after: float | None = PASSIVATE_AFTER,
        snapshot_every: int | None = SNAPSHOT_EVERY,
    ) -> None:
        self.doc_id = doc_id
        self.persistence_id = f"doc/{doc_id}"
        self.store_url = store_url
        self.snapshot_every = snapshot_every
        self.passivate_after = passivate_after  # None: never
        self.owner_key = f"collab/owner/{doc_id}"  # the directory's claim
        self.doc = pycrdt.Doc()
        self.awareness = AwarenessTable()
        self.locks = LockTable()
        self.subs: dict[int, _Subscriber] = {}
        self._sub_ids = itertools.count(1)
        self.rate = RateWindow(start=trio.current_time())
        self.last_call = trio.current_time()
        self._idle_timer: trouper.Timer | None = None
        self._sweeper: trouper.Timer | None = None  # while awareness states exist
        self.persisted = 0  # events written by this incarnation
        self.passivating = False
        self.closing = False

    # ------------------------------------------------------------ persistence

    def apply(self, event: Updated | LockGranted | LockReleased | DocReset) -> None:
        if isinstance(event, Updated):
            if self.recovering:  # live updates were applied before they were stored
                try:
                    self.doc.apply_update(event.update)
                except ValueError as exc:  # stored by hand? never by this actor
                    log.error("document %s: a stored update is unreadable: %s", self.doc_id, exc)
        elif isinstance(event, LockGranted):
            self.locks.install(Lease(event.scope, event.session_id, event.token, event.expires_at))
        elif isinstance(event, LockReleased):
            self.locks.remove(event.scope, event.token)
        else:
            self.doc = pycrdt.Doc()
            self.locks.leases.clear()  # last_token stays: tokens never go back

    def snapshot(self) -> DocState:
        grants = [granted(lease) for lease in self.locks.leases.values()]
        return DocState(self.doc.get_update(), grants, self.locks.last_token)

    def restore(self, state: DocState) -> None:
        self.doc = pycrdt.Doc()
        self.doc.apply_update(state.update)
        self.locks = LockTable()
        for grant in state.locks:
            self.apply(grant)
        self.locks.last_token = max(self.locks.last_token, state.last_token)

    async def on_start(self) -> None:
        self.store: Store = await self.ctx.store(self.store_url)
        self.ctx.subscribe(_shared.SESSION_EVENTS)
        self._touch()

    async def on_stop(self) -> None:
        self.closing = True
        try:
            if self.persisted and not self.passivating:
                await self.save_snapshot()  # the next start replays less
            if self.passivating:
                # Give the claim up before the name goes: a directory that
                # misses the name then finds no claim, and re-creates it.
                me = self.ctx.node.id.encode()
                await self.store.compare_and_set(self.owner_key, me, None)
        except StoreError as exc:  # StaleWriter included: the successor owns it
            log.warning("document %s: stopping without a final snapshot: %r", self.doc_id, exc)

    async def _persist(self, event: Updated | LockGranted | LockReleased | DocReset) -> int:
        seq = await self.persist(event)
        self.persisted += 1
        return seq

    # ------------------------------------------------------------ helpers

    def _touch(self) -> None:
        """A call: the idle clock starts again (one timer at a time)."""
        self.last_call = trio.current_time()
        if self.passivate_after is not None and self._idle_timer is None:
            self._idle_timer = self.ctx.send_after(self.passivate_after, _IdleCheck())

    def _refuse(self, exc: trouper.TrouperError) -> None:
        if not self.ctx.refuse(exc):  # a tell: nobody to tell but the log
            log.warning("document %s: refused: %s", self.doc_id, exc)

    def _broadcast(self, kind: str, data: bytes, origin: str, version: int) -> None:
        now = trio.current_time()
        for sub in self.subs.values():
            sub.queue.push(kind, data, origin, version, now)  # type: ignore[arg-type]
            sub.wake.set()

    def _resync(self) -> DocEvent:
        state_vector = self.doc.get_state()
        return DocEvent("resync", self.doc.get_update(), "", self.last_sequence_nr, state_vector)

    async def _update(self, update: bytes, origin: str) -> int:
        """Broadcast an update already applied to the doc, then store it."""
        self.rate.add(trio.current_time())
        self._broadcast("update", update, origin, self.last_sequence_nr + 1)
        return await self._persist(Updated(update))

    # ------------------------------------------------------------ Yjs sync

    @trouper.handler
    async def sync(self, msg: SyncRequest) -> SyncReply | None:
        self._touch()
        try:
            update = self.doc.get_update(msg.state_vector)
        except ValueError as exc:
            self._refuse(trouper.InvalidArgument(f"malformed Yjs state vector: {exc}"))
            return None
        return SyncReply(update, self.doc.get_state(), self.last_sequence_nr)

    @trouper.handler
    async def apply_update(self, msg: ApplyUpdate) -> Applied | None:
        self._touch()
        if len(msg.update) > MAX_UPDATE_BYTES:
            self._refuse(
                trouper.InvalidArgument(
                    f"update of {len(msg.update)} bytes from {msg.origin!r}: at most"
                    f" {MAX_UPDATE_BYTES} (MAX_UPDATE_BYTES)"
                )
            )
            return None
        if msg.fence is not None:
            try:
                self.locks.check(msg.fence.scope, msg.fence.token, time.time())
            except LockError as exc:
                self._refuse(trouper.InvalidArgument(str(exc)))
                return None
        if msg.update == EMPTY_UPDATE:  # a SyncStep2 with nothing in it
            return Applied(self.last_sequence_nr)
        try:
            self.doc.apply_update(msg.update)
        except ValueError as exc:
            self._refuse(
                trouper.InvalidArgument(f"malformed Yjs update from {msg.origin!r}: {exc}")
            )
            return None
        return Applied(await self._update(msg.update, msg.origin))

    # ------------------------------------------------------------ awareness

    @trouper.handler
    async def apply_awareness(self, msg: ApplyAwareness) -> None:
        self._touch()
        try:
            changed = self.awareness.apply(msg.update, msg.origin, trio.current_time())
        except AwarenessError as exc:
            self._refuse(trouper.InvalidArgument(f"awareness from {msg.origin!r}: {exc}"))
            return
        if changed:
            self._broadcast("awareness", changed, msg.origin, self.last_sequence_nr)
        if self._sweeper is None and len(self.awareness):
            self._sweeper = self.ctx.every(AWARENESS_SWEEP, _AwarenessSweep())

    @trouper.handler
    async def sweep_awareness(self, msg: _AwarenessSweep) -> None:
        """The states of pages (or hubs) that died without a word go."""
        removed = self.awareness.expire(trio.current_time())
        if removed:
            self._broadcast("awareness", removed, "", self.last_sequence_nr)
        if not len(self.awareness) and self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    @trouper.handler
    async def drop_origin(self, msg: DropOrigin) -> None:
        self._touch()
        removed = self.awareness.drop_origin(msg.origin)
        if removed:
            self._broadcast("awareness", removed, msg.origin, self.last_sequence_nr)

    @trouper.handler
    async def get_awareness(self, msg: GetAwareness) -> bytes:
        self._touch()
        return self.awareness.encode_all()

    @trouper.handler
    async def join_state(self, msg: JoinState) -> Joined:
        self._touch()
        return Joined(self.doc.get_state(), self.awareness.encode_all())

    # ------------------------------------------------------------ subscribers

    @trouper.handler
    async def subscribe(self, msg: Subscribe) -> AsyncIterator[DocEvent]:
        self._touch()
        if len(self.subs) >= MAX_SUBSCRIBERS or self.closing:
            log.warning(
                "document %s: subscriber %r refused (%d streams, MAX_SUBSCRIBERS %d)",
                self.doc_id, msg.subscriber, len(self.subs), MAX_SUBSCRIBERS,
            )  # fmt: skip
            return  # an empty stream: the subscriber opens the document again
        key = next(self._sub_ids)
        sub = _Subscriber(SubscriberQueue(max_events=msg.queue))
        self.subs[key] = sub
        try:
            yield self._resync()
            while not self.closing:
                item = sub.queue.pop(trio.current_time())
                if item is None:
                    sub.wake = trio.Event()
                    await sub.wake.wait()
                elif item.kind == "resync":
                    yield self._resync()
                else:
                    yield DocEvent(item.kind, item.data, item.origin, item.version)
        finally:
            del self.subs[key]
            self._touch()

    # ------------------------------------------------------------ the rest

    @trouper.handler
    async def stats(self, msg: GetStats) -> DocStats:
        self._touch()
        now = trio.current_time()
        live = [lease for lease in self.locks.leases.values() if lease.expires_at > time.time()]
        size = len(self.doc.get_update())
        rate = round(self.rate.rate(now), 3)
        editors = len(self.awareness)
        version = self.last_sequence_nr
        live_locks = len(live)
        node = self.ctx.node.id
        return DocStats(self.doc_id, editors, len(self.subs), rate, size, version, live_locks, node)

    @trouper.handler
    async def delete(self, msg: DeleteDocument) -> None:
        await self._persist(DocReset())
        await self.save_snapshot()  # recovery starts after the reset
        await _history.delete_all(self.store, self.doc_id)
        self._close()

    @trouper.handler
    async def passivate(self, msg: Passivate) -> None:
        self._close()

    @trouper.handler
    async def idle_check(self, msg: _IdleCheck) -> None:
        self._idle_timer = None
        assert self.passivate_after is not None
        left = self.last_call + self.passivate_after - trio.current_time()
        if self.subs:
            return  # the last subscriber leaving starts the clock again
        if left > 0:
            self._idle_timer = self.ctx.send_after(left, _IdleCheck())
            return
        log.info("document %s: idle for %ss; passivating", self.doc_id, self.passivate_after)
        try:
            await self.save_snapshot()
        except StoreError as exc:
            log.warning("document %s: passivation snapshot failed: %r", self.doc_id, exc)
        self._close()

    def _close(self) -> None:
        """Stop after this message, giving the claim up; streams end."""
        self.passivating = True
        self.closing = True
        for sub in self.subs.values():
            sub.wake.set()
        self.ctx.stop()
