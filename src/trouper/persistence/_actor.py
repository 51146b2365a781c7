"""``PersistentActor``: an actor whose state is the fold of the events it persisted.

Life of one instance:

1. **claim** its ``persistence_id`` in the store (``_ownership``): from now
   on every write is fenced on this instance's token;
2. **recover** before any message: the latest snapshot (``restore``), then
   the events after it, read ``recovery_batch`` at a time and applied before
   the next batch is read, so memory stays bounded by one batch whatever the
   length of the log;
3. **run**: ``await self.persist(event)`` appends the event (fenced), then
   calls ``apply(event)``; every ``snapshot_every`` events a snapshot is
   appended to the snapshot log (fenced too).

Failures: a store error in ``persist`` propagates from the handler, so the
actor fails and its supervisor restarts it, and the restart recovers from
what the store holds: an event is acknowledged (``persist`` returned) only
once it is stored, so nothing acknowledged is lost. A ``StaleWriter`` means a
newer instance owns the id: the actor stops (the default supervision decider
stops, not restarts, an actor failing with it; a restart anyway fails at
once instead of claiming the id back).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from typing import Any

import trio

from .._errors import ConfigurationError
from ..actors import Actor
from ..stores import StaleWriter, Store, StoreError
from ._codec import EventCodec, Upcast, register_annotated
from ._ownership import Keys, claim, new_token, release, stale_marks
from ._store import open_actor_store

__all__ = ["PersistentActor"]

log = logging.getLogger("trouper.persistence")

_codec = EventCodec()


def _wrap_on_start(user: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def on_start(self: PersistentActor) -> None:
        await self._persistence_start()
        if not self._stale:
            await user(self)

    on_start.__trouper_persistence__ = True  # type: ignore[attr-defined]
    return on_start


def _wrap_on_stop(user: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    async def on_stop(self: PersistentActor) -> None:
        try:
            await user(self)
        finally:
            await self._persistence_stop()

    on_stop.__trouper_persistence__ = True  # type: ignore[attr-defined]
    return on_stop


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_settings(obj: Any, where: str) -> None:
    every = obj.snapshot_every
    if every is not None and not _positive_int(every):
        raise ConfigurationError(f"{where}.snapshot_every must be None or an int >= 1: {every!r}")
    for name in ("recovery_batch", "keep_snapshots"):
        if not _positive_int(getattr(obj, name)):
            raise ConfigurationError(f"{where}.{name} must be an int >= 1: {getattr(obj, name)!r}")
    url = obj.store_url
    if url is not None and not isinstance(url, str):
        raise ConfigurationError(f"{where}.store_url must be a URL string or None: {url!r}")


class PersistentActor(Actor):
    """Base class of event-sourced actors (see the module docstring).

    Subclasses set ``persistence_id`` (a class attribute, or a property
    computed from the constructor's arguments) and implement ``apply``;
    with ``snapshot_every``, also ``snapshot`` and ``restore``. Their own
    ``on_start`` runs after recovery and their ``on_stop`` before the store
    is released, whether or not they call ``super()``.
    """

    #: The log this actor owns in the store; one live writer per id.
    persistence_id: str
    # The settings below are class attributes; an instance may set its own
    # in ``__init__`` (they are checked again when it starts).

    #: The store (``sqlite:///...``, ``postgres://...``); None: the node's default.
    store_url: str | None = None
    #: Take a snapshot every N persisted events (None: never).
    snapshot_every: int | None = None
    #: Events read (and held in memory) at a time during recovery.
    recovery_batch: int = 256
    #: Snapshots kept in the store (older ones are trimmed).
    keep_snapshots: int = 2

    _persistence_ready: bool = False
    _stale: bool = False
    _uncertain: bool = False  # a persist was cancelled mid-write
    _recovering: bool = False
    _sequence: int = 0
    _since_snapshot: int = 0
    _store: Store
    _keys: Keys
    _token: bytes
    _exit: AsyncExitStack | None = None
    _write_lock: trio.StrictFIFOLock

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, wrap in (("on_start", _wrap_on_start), ("on_stop", _wrap_on_stop)):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "__trouper_persistence__", False):
                type.__setattr__(cls, name, wrap(fn))
        for hook in ("apply", "restore"):
            if hook in cls.__dict__:
                register_annotated(cls.__dict__[hook])
        _check_settings(cls, cls.__qualname__)

    # ------------------------------------------------------------ hooks

    def apply(self, event: Any) -> None:
        """Change the state for ``event`` (after it is stored, and in recovery).

        Annotate ``event`` with the event types (``A | B``): that registers
        them. Must not await, fail or touch the world: it is replayed.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement apply(event)")

    def snapshot(self) -> Any:
        """The state as a msgspec Struct (with ``snapshot_every``)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement snapshot()")

    def restore(self, state: Any) -> None:
        """Take the state back from a snapshot (annotate ``state`` with its type)."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement restore(state)")

    def upcast(self, type_name: str, raw: Any) -> Any:
        """The event (or snapshot state) for a stored record of an old shape.

        ``raw`` is the record's payload as plain data (a dict for a Struct).
        Return the event to use, or None to decode the record as the type
        now registered under ``type_name``. Only called when overridden.
        """
        return None

    # ------------------------------------------------------------ the API

    @property
    def last_sequence_nr(self) -> int:
        """The id of the last event applied (0: none yet)."""
        return self._sequence

    @property
    def recovering(self) -> bool:
        """True while ``apply`` replays stored events (not new ones)."""
        return self._recovering

    async def persist(self, event: Any) -> int:
        """Store ``event``, then ``apply`` it; return its id in the log.

        Raises ``StaleWriter`` (and the actor stops) if another instance has
        claimed this id, with nothing written; other ``StoreError`` as the
        store raised it (the actor fails and is recovered by its restart).
        Cancelled mid-write, the event may or may not be stored (the store
        completes the write it started): it is not applied, and this
        instance refuses further persists with ``StoreError`` until a restart
        recovers what the log holds.
        """
        self._live()  # fail fast (and clearly) before waiting for the lock
        # One write at a time, even from several tasks (ctx.start_soon): the
        # state must fold the events in log order, as recovery will. Taken
        # without a yield when free (the common case: the store call below
        # is the checkpoint).
        lock = self._write_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            store, keys, token = self._live()
            record = _codec.encode_event(event)
            try:
                seq = await store.append(keys.events, record, fence=(keys.owner, token))
            except StaleWriter:
                self._became_stale()
                raise
            except trio.Cancelled:
                # The store finishes a write it started (its own rule), but
                # this caller cannot know whether it did: the state may lag
                # the log by this event, so this instance writes no more.
                self._uncertain = True
                raise
            self._sequence = seq
            self.apply(event)
            self._since_snapshot += 1
            every = self.snapshot_every
            if every is not None and self._since_snapshot >= every:
                await self._save_snapshot()
        finally:
            lock.release()
        return seq

    async def persist_all(self, events: Iterable[Any]) -> list[int]:
        """``persist`` each event in turn (not atomic: a failure leaves the
        earlier ones stored and applied)."""
        return [await self.persist(event) for event in events]

    async def read_events(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, Any]]:
        """Up to ``limit`` of this actor's stored events with ids above
        ``after_id``, oldest first, as ``(id, event)`` (read back through
        ``upcast``): its own log, for a reader that resumes from an id."""
        store, keys, _token = self._live()
        upcast = self._upcaster()
        records = await store.read(keys.events, after_id=after_id, limit=limit)
        where = self.persistence_id
        return [
            (seq, _codec.decode_event(f"{where} event {seq}", record, upcast))
            for seq, record in records
        ]

    async def save_snapshot(self) -> None:
        """Store a snapshot of the state now (``snapshot_every`` calls this).

        A store failure here is logged, not raised: the events are stored,
        so only recovery time suffers; the next snapshot tries again.
        """
        self._live()
        async with self._write_lock:
            await self._save_snapshot()

    async def _save_snapshot(self) -> None:
        store, keys, token = self._live()
        state = self._snapshot_state()
        if state is None:
            return  # nothing that can be stored now; the next one tries again
        record = _codec.encode_snapshot(self._sequence, state)
        try:
            with trio.CancelScope(shield=True):
                await store.append(keys.snapshots, record, fence=(keys.owner, token))
                await store.trim(keys.snapshots, self.keep_snapshots)
        except StaleWriter:
            self._became_stale()
            raise
        except StoreError as exc:
            log.warning("%s: snapshot failed (will retry): %r", self.persistence_id, exc)
            return
        self._since_snapshot = 0

    # ------------------------------------------------------------ inside

    def _live(self) -> tuple[Store, Keys, bytes]:
        if self._stale:
            raise StaleWriter(f"{self.persistence_id}: another instance owns this id now")
        if self._uncertain:
            raise StoreError(
                f"{self.persistence_id}: an earlier persist was cancelled mid-write; the actor"
                " must restart (and recover) before it persists again"
            )
        if not self._persistence_ready:
            raise ConfigurationError(
                f"{type(self).__qualname__}: persist() before recovery finished (in __init__?)"
            )
        return self._store, self._keys, self._token

    def _became_stale(self) -> None:
        self._stale = True
        stale_marks.mark(self.ctx.self_ref)
        log.warning("%s: stale writer, stopping (a newer owner took over)", self.persistence_id)
        self.ctx.stop()

    async def _after_recovery(self) -> None:
        """Called once recovery is done, before any message."""

    def _snapshot_state(self) -> Any:
        """What a snapshot stores (None: skip this one)."""
        return self.snapshot()

    def _restore_state(self, state: Any, upcast: Upcast | None) -> None:
        """Take back what ``_snapshot_state`` stored."""
        self.restore(state)

    def _upcaster(self) -> Upcast | None:
        if type(self).upcast is PersistentActor.upcast:
            return None
        return self.upcast

    async def _persistence_start(self) -> None:
        if self._persistence_ready or self._stale:
            return  # a user's on_start calling super().on_start()
        if self.ctx.self_ref in stale_marks:
            # Restarted after losing its id (a custom decider, or a permanent
            # actor that swallowed StaleWriter and stopped): a stale writer
            # must not serve, nor claim the id back from its successor. The
            # start fails, and the default decider stops it for good.
            self._stale = True
            raise StaleWriter(f"{self.persistence_id}: another instance owns this id now")
        self._write_lock = trio.StrictFIFOLock()
        keys = Keys(getattr(self, "persistence_id", None))
        _check_settings(self, type(self).__qualname__)
        if self.snapshot_every is not None:
            for hook in ("snapshot", "restore"):
                if getattr(type(self), hook) is getattr(PersistentActor, hook):
                    raise ConfigurationError(
                        f"{type(self).__qualname__}: snapshot_every needs {hook}() too"
                    )
        self._exit = AsyncExitStack()
        store, closer = await open_actor_store(self.ctx, self.store_url)
        self._exit.push_async_exit(closer)
        try:
            token = new_token(self.ctx.node.id)
            await claim(store, keys.owner, token)
            self._store, self._keys, self._token = store, keys, token
            await self._recover(store, keys)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._exit.aclose()
            raise
        self._persistence_ready = True
        await self._after_recovery()

    async def _recover(self, store: Store, keys: Keys) -> None:
        for hook in ("apply", "restore"):  # forward references resolve by now
            register_annotated(getattr(type(self), hook))
        upcast = self._upcaster()
        where = self.persistence_id
        self._recovering = True
        after = 0
        latest = await store.tail(keys.snapshots, 1)
        if latest:
            after, state = _codec.decode_snapshot(f"{where} snapshot", latest[0][1], upcast)
            self._restore_state(state, upcast)
        snapshot_at = after
        batch = self.recovery_batch
        while True:
            records = await store.read(keys.events, after_id=after, limit=batch)
            for seq, record in records:
                self.apply(_codec.decode_event(f"{where} event {seq}", record, upcast))
                after = seq
            if len(records) < batch:
                break
            del records  # freed before the next read: one batch in memory, never two
        self._sequence = after
        self._since_snapshot = after - snapshot_at  # the next snapshot comes on schedule
        self._recovering = False

    async def _persistence_stop(self) -> None:
        exit_stack = self._exit
        if exit_stack is None:
            return
        ready, self._persistence_ready = self._persistence_ready, False
        with trio.CancelScope(shield=True):  # release and close even when killed
            try:
                if ready and not self._stale:
                    await release(self._store, self._keys.owner, self._token)
            except StoreError as exc:
                log.warning("%s: could not release ownership: %r", self.persistence_id, exc)
            finally:
                await exit_stack.aclose()

    async def on_start(self) -> None:
        await self._persistence_start()

    async def on_stop(self) -> None:
        await self._persistence_stop()
