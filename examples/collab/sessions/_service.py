"""``SessionService``: the ``collab.sessions`` service, one per node.

Every call is checked first (``_record``), then goes to the session's actor
wherever it runs (``node.lookup("session:{id}")``). A session whose actor is
gone while its record lives (its node restarted or died) gets a new actor on
the node that was asked, when the call needs one (heartbeat, update): the
node claims the record's ``owner`` field (compare-and-set) from the owner it
read, so of two nodes racing, one wins and spawns; the other looks the name
up. ``get`` and ``list`` read the store when no actor is needed.

Every node's service sweeps the store on a timer (a task of its own): sessions that
expired without an actor to say so (their node died) leave the indexes, and
their ``SessionEnded(..., "expired")`` is published from here.
"""

# No ``from __future__ import annotations``: handler annotations must be real classes.
import logging
import math
import time

import msgspec
import trio

import trouper
from trouper.stores import StoreError, StoreUnavailable

from .._shared import SESSION_EVENTS, SessionEnded
from ._record import (
    SessionLimits,
    SessionNotFound,
    SessionRecord,
    check_data,
    check_id,
    check_name,
    check_ttl,
    new_session_id,
)
from ._session import DeleteSession, GetSession, Heartbeat, Session, SessionReply, UpdateData
from ._store import CreateRefused, SessionStore, open_session_store

log = logging.getLogger("examples.collab.sessions")

#: The name of each node's service actor.
SERVICE_NAME = "collab-sessions"
#: How long to wait for the actor of a session owned by a live node to show
#: up in this node's view of the names (gossip), or for a racing claimant's.
OWNER_WAIT = 2.0
#: How long one ask of a session actor may take.
ASK_TIMEOUT = 5.0
#: Seconds between two sweeps, and the most sessions one sweep removes
#: (the next sweep takes the rest).
SWEEP_INTERVAL = 5.0
SWEEP_BATCH = 1000
#: The longest wait between two sweeps while they fail (the store is away).
SWEEP_BACKOFF_MAX = 60.0
#: The longest a create that failed after writing may spend undoing it.
CLEANUP_TIMEOUT = 5.0
#: Errors that mean "the actor (or its node) went away": resolve it again.
_GONE = (trouper.ActorDead, trouper.NodeDown, trouper.ConnectionLost)


@trouper.message(name="collab:sessions.Opened")
class Opened(msgspec.Struct, frozen=True):
    """``open``'s answer: the record, and whether this call created it (a
    live session of the same user on that connection is returned as is)."""

    record: SessionRecord
    created: bool


def _not_found(session_id: str) -> SessionNotFound:
    return SessionNotFound(f"no session {session_id!r} (unknown, expired or deleted)")


@trouper.service("collab.sessions")
class SessionService(trouper.Actor):
    def __init__(
        self,
        store_url: str | None,
        default_ttl: float,
        limits: SessionLimits | None,
        sweep_interval: float,
    ) -> None:
        # Plain arguments (None: the default bounds), so another node can
        # spawn a service here (``node.spawn(..., on=)`` sends msgpack).
        self.store_url = store_url
        self.default_ttl = default_ttl
        self.limits = SessionLimits() if limits is None else limits
        self.sweep_interval = sweep_interval
        self.hosted: set[trouper.ActorRef] = set()
        self.open_error: StoreError | trouper.ConfigurationError | None = None

    async def on_start(self) -> None:
        ready = trio.Event()
        self.ctx.start_soon(self._hold_store, ready)
        await ready.wait()
        if self.open_error is not None:
            raise self.open_error
        self.ctx.start_soon(self._sweeper)

    async def _hold_store(self, ready: trio.Event) -> None:
        # A Redis pool runs tasks in a nursery: one task must enter and leave
        # it, so it lives here for the actor's lifetime.
        try:
            async with open_session_store(self.ctx.node, self.store_url) as store:
                self.store: SessionStore = store
                ready.set()
                await trio.sleep_forever()
        except (StoreError, trouper.ConfigurationError) as exc:
            if ready.is_set():
                raise  # the actor fails and its supervisor restarts it
            self.open_error = exc  # spawn refuses the service, naming it
        finally:
            if not ready.is_set():  # never leave on_start waiting
                if self.open_error is None:
                    self.open_error = StoreError("the session store could not be opened")
                ready.set()

    # ------------------------------------------------------------ helpers

    def _check_room(self) -> None:
        if len(self.hosted) >= self.limits.max_sessions_per_node:
            raise trouper.InvalidArgument(
                f"this node hosts {len(self.hosted)} sessions, its limit"
                f" ({self.limits.max_sessions_per_node}): no room for another one"
            )

    async def _spawn(self, record: SessionRecord) -> trouper.ActorRef:
        name = f"session:{record.id}"
        self._check_room()
        try:
            ref = await self.ctx.spawn(
                Session, record, self.store, self.ctx.node.id, name=name, restart="temporary"
            )
        except trouper.NameTaken:  # a racing call of this node made it first
            try:
                return await self.ctx.node.lookup(name, timeout=OWNER_WAIT)
            except trouper.ActorNotFound:
                raise _not_found(record.id) from None
        self.hosted.add(ref)
        self.ctx.watch(ref)
        return ref

    async def _find(self, session_id: str, recreate: bool) -> trouper.ActorRef | SessionRecord:
        """The session's actor; with ``recreate=False`` its stored record if
        it has no actor; ``SessionNotFound`` if there is no such live session."""
        node = self.ctx.node
        name = f"session:{session_id}"
        try:
            return await node.lookup(name)
        except trouper.ActorNotFound:
            pass
        found = await self.store.load(session_id)
        if found is None:
            raise _not_found(session_id)
        record, owner = found
        if not recreate:
            return record
        status = {m.node_id: m.status for m in node.members()}
        if owner != node.id and status.get(owner) == "up":
            try:  # its node is alive: its actor's name may not have reached us yet
                return await node.lookup(name, timeout=OWNER_WAIT)
            except trouper.ActorNotFound:
                pass  # that node lost it: take it over
        if owner == node.id or await self.store.claim(session_id, owner, node.id):
            return await self._spawn(record)
        try:  # another node claimed it first: its actor will show up
            return await node.lookup(name, timeout=OWNER_WAIT)
        except trouper.ActorNotFound:
            raise _not_found(session_id) from None

    async def _ask(self, session_id: str, msg: object) -> SessionRecord:
        for _attempt in range(3):
            target = await self._find(session_id, recreate=True)
            assert isinstance(target, trouper.ActorRef)
            try:
                reply: SessionReply = await target.ask(msg, timeout=ASK_TIMEOUT)
            except _GONE:
                continue  # it stopped (expired?) or its node died: look again
            if reply.error == "moved":
                continue
            return self._unwrap(session_id, reply)
        raise _not_found(session_id)

    @staticmethod
    def _unwrap(session_id: str, reply: SessionReply) -> SessionRecord:
        if reply.error == "store":
            cls = StoreUnavailable if reply.retryable else StoreError
            raise cls(f"session {session_id!r}: {reply.message}")
        if reply.error or reply.record is None:
            raise _not_found(session_id)
        return reply.record

    def _publish_end(self, session_id: str, user: str, reason: str) -> None:
        self.ctx.node.publish(SESSION_EVENTS, SessionEnded(session_id, user, reason))

    # ------------------------------------------------------------ the API

    @trouper.rpc
    async def open(
        self,
        user: str,
        connection: str,
        ttl: float | None = None,
        data: dict[str, str] | None = None,
    ) -> Opened:
        """``create``, saying whether the session is new (HTTP: 201 or 200)."""
        check_name("user", user)
        check_name("connection", connection)
        ttl = check_ttl(self.default_ttl if ttl is None else ttl, self.limits)
        data = check_data(data or {})
        self._check_room()  # before anything is written
        now = time.time()
        record = SessionRecord(new_session_id(), user, connection, now, now, ttl, data)
        try:
            record, created = await self.store.create(
                record, self.ctx.node.id, self.limits.max_sessions_per_user
            )
        except CreateRefused as exc:
            raise trouper.InvalidArgument(str(exc)) from None
        if created:
            try:
                await self._spawn(record)
            except BaseException:
                # Do not leave an actorless record behind (even when cancelled;
                # bounded, and the sweep would take it after its TTL anyway).
                with trio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                    await self.store.remove(record.id)
                raise
        return Opened(record, created)

    @trouper.rpc
    async def create(
        self,
        user: str,
        connection: str,
        ttl: float | None = None,
        data: dict[str, str] | None = None,
    ) -> SessionRecord:
        """A new session of ``user`` on ``connection`` (or that connection's
        live session of the same user); ``ttl`` seconds without a heartbeat
        end it (the service's ``default_ttl`` if None)."""
        return (await self.open(user, connection, ttl, data)).record

    @trouper.rpc(idempotent=True)
    async def get(self, session_id: str) -> SessionRecord:
        target = await self._find(check_id(session_id), recreate=False)
        if isinstance(target, SessionRecord):
            return target
        try:
            reply: SessionReply = await target.ask(GetSession(), timeout=ASK_TIMEOUT)
        except _GONE:
            found = await self.store.load(session_id)
            if found is None:
                raise _not_found(session_id) from None
            return found[0]
        return self._unwrap(session_id, reply)

    @trouper.rpc
    async def update(self, session_id: str, data: dict[str, str]) -> SessionRecord:
        """Replace the session's ``data`` (this renews its TTL, as a heartbeat)."""
        return await self._ask(check_id(session_id), UpdateData(check_data(data)))

    @trouper.rpc(idempotent=True)
    async def heartbeat(self, session_id: str) -> SessionRecord:
        """Keep the session alive for another ``ttl``; re-creates its actor
        here if its node is gone and its record is not."""
        return await self._ask(check_id(session_id), Heartbeat())

    @trouper.rpc
    async def delete(self, session_id: str) -> bool:
        """End the session (``SessionEnded(..., "deleted")``); False if there
        was no such live session."""
        check_id(session_id)
        try:
            target = await self._find(session_id, recreate=False)
        except trouper.ActorNotFound:
            return False
        if isinstance(target, trouper.ActorRef):
            try:
                reply: SessionReply = await target.ask(DeleteSession(), timeout=ASK_TIMEOUT)
            except _GONE:
                pass  # its node died meanwhile: remove it from here
            else:
                self._unwrap(session_id, reply)  # raises a store failure
                return True
        user = await self.store.remove(session_id)
        if user is None:
            return False
        self._publish_end(session_id, user, "deleted")
        return True

    @trouper.rpc(idempotent=True)
    async def list(
        self,
        user: str | None = None,
        connection: str | None = None,
        active: bool = False,
        limit: int = 100,
    ) -> list[SessionRecord]:
        """The live sessions of ``user`` and/or on ``connection``, or every
        live one (``active=True``, or no filter), by id, at most ``limit``."""
        if user is not None:
            check_name("user", user)
        if connection is not None:
            check_name("connection", connection)
        if not 1 <= limit <= self.limits.max_list_limit:
            raise trouper.InvalidArgument(
                f"limit {limit} is out of range: 1 to {self.limits.max_list_limit}"
            )
        found: list[SessionRecord] = []
        for session_id in await self.store.ids(user, connection, active, limit):
            stored = await self.store.load(session_id)
            if stored is not None:
                found.append(stored[0])
                if len(found) == limit:
                    break
        return found

    # ------------------------------------------------------------ upkeep

    @trouper.handler
    async def session_stopped(self, msg: trouper.Terminated) -> None:
        self.hosted.discard(msg.ref)

    async def _sweeper(self) -> None:
        # Beside the calls, not in the mailbox: a sweep that waits for a
        # store that is away must not hold up the calls (nor pile up behind
        # them). After a failure it waits longer, up to SWEEP_BACKOFF_MAX.
        delay = self.sweep_interval
        while True:
            await trio.sleep(delay)
            try:
                ended = await self.store.sweep(SWEEP_BATCH)
            except StoreError as exc:
                delay = min(delay * 2, max(self.sweep_interval, SWEEP_BACKOFF_MAX))
                log.warning("session sweep failed: %s (next in %.1f s)", exc, delay)
                continue
            delay = self.sweep_interval
            for session_id, user in ended:
                self._publish_end(session_id, user, "expired")


async def spawn_session_service(
    node: trouper.Node,
    *,
    store_url: str | None = None,
    default_ttl: float = 30.0,
    limits: SessionLimits | None = None,
    sweep_interval: float = SWEEP_INTERVAL,
) -> trouper.ActorRef:
    """Start this node's session service (named ``collab-sessions``, in the
    service group ``collab.sessions``) on ``store_url`` (``redis://...``
    keeps AetherFlow's layout; None: the node's default store), holding
    clients to ``limits`` (None: the module's bounds)."""
    limits = SessionLimits() if limits is None else limits
    if not (math.isfinite(default_ttl) and limits.min_ttl <= default_ttl <= limits.max_ttl):
        raise trouper.ConfigurationError(f"default_ttl {default_ttl!r} is outside the ttl range")
    if not (math.isfinite(sweep_interval) and sweep_interval > 0):
        raise trouper.ConfigurationError(f"sweep_interval {sweep_interval!r} must be > 0")
    args = (store_url, default_ttl, limits, sweep_interval)
    return await node.spawn(SessionService, *args, name=SERVICE_NAME)
