"""The ``Session`` actor: one per session, registered as ``session:{id}``.

It holds the record and its expiry timer, and writes every change through to
the store (so the store is always the truth, and another node can re-create
the actor from it). When the TTL passes without a heartbeat it removes the
session from the store, publishes ``SessionEnded(..., "expired")`` on
``SESSION_EVENTS`` if it was the one that removed it (the sweep may have
been first), and stops, so its watchers get ``trouper.Terminated``.

Its handlers never raise: a store failure is answered as a ``SessionReply``
with ``error="store"``, so a flaky store fails the call, not the actor.
"""

# No ``from __future__ import annotations``: handler annotations must be real classes.
import logging
import time

import msgspec

import trouper
from trouper.stores import StoreError

from .._shared import SESSION_EVENTS, SessionEnded
from ._record import SessionRecord
from ._store import SessionStore

log = logging.getLogger("examples.collab.sessions")


@trouper.message(name="collab:sessions.Get")
class GetSession(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab:sessions.Heartbeat")
class Heartbeat(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab:sessions.Update")
class UpdateData(msgspec.Struct, frozen=True):
    data: dict[str, str]


@trouper.message(name="collab:sessions.Delete")
class DeleteSession(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab:sessions.Reply")
class SessionReply(msgspec.Struct, frozen=True):
    """``error``: "" (done), "gone" (the session ended), "moved" (another
    node took the session over: ask again by name), "store" (the store
    failed; ``retryable`` says whether trying again may help)."""

    record: SessionRecord | None = None
    error: str = ""
    message: str = ""
    retryable: bool = False


class _Expire(msgspec.Struct, frozen=True):
    generation: int


def _store_failed(exc: StoreError) -> SessionReply:
    return SessionReply(error="store", message=str(exc), retryable=exc.is_retryable)


class Session(trouper.Actor):
    def __init__(self, record: SessionRecord, store: SessionStore, owner: str) -> None:
        self.record = record
        self.store = store  # the service's: same node, same process
        self.owner = owner
        self.generation = 0
        self.timer: trouper.Timer | None = None

    async def on_start(self) -> None:
        self._arm()

    def _arm(self) -> None:
        # One timer per session: the last one is cancelled (a client that
        # heartbeats every millisecond must not fill the node's timer heap),
        # and the generation makes one that already fired harmless.
        if self.timer is not None:
            self.timer.cancel()
        self.generation += 1
        self.timer = self.ctx.send_after(self.record.ttl, _Expire(self.generation))

    async def _end(self, reason: str) -> None:
        user = await self.store.remove(self.record.id)
        if user is not None:
            self.ctx.node.publish(SESSION_EVENTS, SessionEnded(self.record.id, user, reason))
        self.ctx.stop()

    async def _expire(self) -> None:
        try:
            await self._end("expired")
        except StoreError as exc:
            # The record keeps its TTL in the store: it expires there, and
            # the sweep announces it.
            log.warning("session %s: could not remove it (%s); the sweep will", self.record.id, exc)
            self.ctx.stop()

    async def _write(self, record: SessionRecord) -> SessionReply:
        try:
            outcome = await self.store.write(record, self.owner)
        except StoreError as exc:
            return _store_failed(exc)
        if outcome == "ok":
            self.record = record
            self._arm()
            return SessionReply(record)
        if outcome == "taken":  # a node that could not see this actor took it over
            self.ctx.stop()
            return SessionReply(error="moved", message="the session moved to another node")
        await self._expire()  # its record expired before its timer fired
        return SessionReply(error="gone", message=f"session {self.record.id!r} has expired")

    @trouper.handler
    async def get(self, msg: GetSession) -> SessionReply:
        return SessionReply(self.record)

    @trouper.handler
    async def heartbeat(self, msg: Heartbeat) -> SessionReply:
        return await self._write(msgspec.structs.replace(self.record, last_heartbeat=time.time()))

    @trouper.handler
    async def update(self, msg: UpdateData) -> SessionReply:
        # A write renews the TTL in the store, so an update counts as a heartbeat.
        now = time.time()
        return await self._write(
            msgspec.structs.replace(self.record, data=msg.data, last_heartbeat=now)
        )

    @trouper.handler
    async def delete(self, msg: DeleteSession) -> SessionReply:
        try:
            await self._end("deleted")
        except StoreError as exc:  # not deleted: the session goes on, the caller may retry
            return _store_failed(exc)
        return SessionReply(self.record)

    @trouper.handler
    async def expire(self, msg: _Expire) -> None:
        if msg.generation == self.generation:
            await self._expire()
