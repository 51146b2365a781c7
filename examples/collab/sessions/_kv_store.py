"""Sessions in any trouper store (sqlite, memory, PostgreSQL): keys only.

The same names as the Redis layout, as store keys:

* ``session:{id}``: the record and its owner (JSON), with ``ttl=`` the
  session's TTL, renewed by every heartbeat;
* ``sessions:user:{user}`` and ``sessions:conn:{conn}``: JSON lists of ids;
* ``sessions:active:{n}`` (n in 0..15, by a hash of the id): the companion
  entries, ``{id: [user, conn, check_after]}``, without TTL. A store has no
  sorted sets, so the active set is split in buckets to keep each rewrite
  small, and ``check_after`` (wall-clock) is the earliest time the record
  may have expired: the sweep loads only those records, and moves
  ``check_after`` on for the ones that are still alive.

Every multi-key change is a sequence of ``compare_and_set`` loops on one key
at a time, each retried when another writer got in between; the order
(companion entry first on create, last on remove) means a crash halfway
leaves nothing the sweep cannot find.
"""

import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from trouper.stores import Store, StoreBusy

from ._record import SessionRecord
from ._store import CreateRefused, WriteOutcome

#: Buckets of the companion entries (a rewrite costs one bucket's size).
ACTIVE_BUCKETS = 16
#: Compare-and-set attempts on one key before giving up with StoreBusy
#: (each failure means another writer made progress).
CAS_ATTEMPTS = 100


class _Stored(msgspec.Struct, frozen=True):
    record: SessionRecord
    owner: str


_encode = msgspec.json.encode
_decode_stored = msgspec.json.Decoder(_Stored).decode
_decode_ids = msgspec.json.Decoder(list[str]).decode
_decode_bucket = msgspec.json.Decoder(dict[str, tuple[str, str, float]]).decode


def _bucket(session_id: str) -> str:
    return f"sessions:active:{zlib.crc32(session_id.encode()) % ACTIVE_BUCKETS}"


class KvSessionStore:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock  # wall-clock seconds, as the store's TTLs (tests pass their own)

    async def _update(
        self, key: str, change: Callable[[bytes | None], Awaitable[bytes | bool | None]]
    ) -> bool:
        """Apply ``change`` (old value -> new value, or False: nothing to do)
        to ``key`` atomically, retrying on a concurrent write."""
        for _ in range(CAS_ATTEMPTS):
            old = await self.store.get(key)
            new = await change(old)
            if new is False:
                return False
            assert not isinstance(new, bool)
            if new == old:
                return True
            if await self.store.compare_and_set(key, old, new):
                return True
        raise StoreBusy(f"{key!r}: {CAS_ATTEMPTS} concurrent writers in a row")

    async def _edit_ids(self, key: str, session_id: str, add: bool) -> None:
        async def change(old: bytes | None) -> bytes | None:
            ids = _decode_ids(old) if old is not None else []
            ids = [i for i in ids if i != session_id] + ([session_id] if add else [])
            return _encode(ids) if ids else None

        await self._update(key, change)

    async def _live(self, ids: list[str]) -> list[SessionRecord]:
        found = [await self.load(i) for i in ids]
        return [stored[0] for stored in found if stored is not None]

    async def create(
        self, record: SessionRecord, owner: str, max_per_user: int
    ) -> tuple[SessionRecord, bool]:
        sid, user, conn = record.id, record.user, record.connection
        existing: list[SessionRecord] = []

        async def take_conn(old: bytes | None) -> bytes | bool:
            live = await self._live(_decode_ids(old) if old is not None else [])
            if live:
                existing[:] = live
                return False
            return _encode([sid])  # the stale ids it held are dead: drop them

        async def join_user(old: bytes | None) -> bytes | bool:
            ids = _decode_ids(old) if old is not None else []
            if len(ids) >= max_per_user:
                ids = [r.id for r in await self._live(ids)]
                if len(ids) >= max_per_user:
                    return False
            return _encode([*ids, sid])

        async def add_active(old: bytes | None) -> bytes:
            bucket = _decode_bucket(old) if old is not None else {}
            bucket[sid] = (user, conn, record.created + record.ttl)
            return _encode(bucket)

        await self._update(_bucket(sid), add_active)
        if not await self._update(f"sessions:conn:{conn}", take_conn):
            await self._drop_active(sid)
            other = existing[0]
            if other.user == user:
                return other, False
            raise CreateRefused(f"connection {conn!r} is in use by another user's session")
        if not await self._update(f"sessions:user:{user}", join_user):
            await self._edit_ids(f"sessions:conn:{conn}", sid, add=False)
            await self._drop_active(sid)
            raise CreateRefused(f"user {user!r} has {max_per_user} live sessions, the most allowed")
        await self.store.put(f"session:{sid}", _encode(_Stored(record, owner)), ttl=record.ttl)
        return record, True

    async def load(self, session_id: str) -> tuple[SessionRecord, str] | None:
        raw = await self.store.get(f"session:{session_id}")
        if raw is None:
            return None
        stored = _decode_stored(raw)
        return stored.record, stored.owner

    async def _rewrite(
        self, session_id: str, make: Callable[[_Stored], _Stored | None], renew: bool
    ) -> str:
        """Replace the stored record with ``make(stored)`` (None: "taken");
        ``renew``: a full TTL from now, else what was left of it."""
        key = f"session:{session_id}"
        for _ in range(CAS_ATTEMPTS):
            raw = await self.store.get(key)
            if raw is None:
                return "gone"
            stored = _decode_stored(raw)
            new = make(stored)
            if new is None:
                return "taken"
            ttl = new.record.ttl
            if not renew:
                ttl = stored.record.last_heartbeat + stored.record.ttl - self.clock()
                if ttl <= 0:
                    return "gone"
            if await self.store.compare_and_set(key, raw, _encode(new), ttl=ttl):
                return "ok"
        raise StoreBusy(f"{key!r}: {CAS_ATTEMPTS} concurrent writers in a row")

    async def write(self, record: SessionRecord, owner: str) -> WriteOutcome:
        def make(stored: _Stored) -> _Stored | None:
            return _Stored(record, owner) if stored.owner == owner else None

        outcome = await self._rewrite(record.id, make, renew=True)
        return "ok" if outcome == "ok" else "gone" if outcome == "gone" else "taken"

    async def claim(self, session_id: str, expected: str, owner: str) -> bool:
        # A claim moves the session, it is no heartbeat: the TTL runs on.
        def make(stored: _Stored) -> _Stored | None:
            return _Stored(stored.record, owner) if stored.owner == expected else None

        return await self._rewrite(session_id, make, renew=False) == "ok"

    async def _drop_active(self, session_id: str) -> tuple[str, str] | None:
        removed: list[tuple[str, str]] = []

        async def change(old: bytes | None) -> bytes | bool | None:
            bucket = _decode_bucket(old) if old is not None else {}
            entry = bucket.pop(session_id, None)
            # Only the attempt whose write lands counts: an earlier one that
            # lost its compare-and-set to another remover must not.
            removed[:] = [] if entry is None else [(entry[0], entry[1])]
            if entry is None:
                return False
            return _encode(bucket) if bucket else None

        await self._update(_bucket(session_id), change)
        return removed[0] if removed else None

    async def remove(self, session_id: str) -> str | None:
        companion = await self._entry(session_id)
        if companion is None:  # removed already (or never fully created)
            await self.store.delete(f"session:{session_id}")
            return None
        user, conn = companion
        await self._edit_ids(f"sessions:user:{user}", session_id, add=False)
        await self._edit_ids(f"sessions:conn:{conn}", session_id, add=False)
        await self.store.delete(f"session:{session_id}")
        # The companion entry goes last: removing it is what makes this call
        # the one that announces the end (and a crash before it leaves the
        # session for the sweep).
        return user if await self._drop_active(session_id) is not None else None

    async def _entry(self, session_id: str) -> tuple[str, str] | None:
        raw = await self.store.get(_bucket(session_id))
        entry = _decode_bucket(raw).get(session_id) if raw is not None else None
        return None if entry is None else (entry[0], entry[1])

    async def ids(
        self, user: str | None, connection: str | None, active: bool, limit: int
    ) -> list[str]:
        sets: list[set[str]] = []
        for key in (
            f"sessions:user:{user}" if user is not None else None,
            f"sessions:conn:{connection}" if connection is not None else None,
        ):
            if key is not None:
                raw = await self.store.get(key)
                sets.append(set(_decode_ids(raw)) if raw is not None else set())
        if active or not sets:
            everyone: set[str] = set()
            for n in range(ACTIVE_BUCKETS):
                raw = await self.store.get(f"sessions:active:{n}")
                if raw is not None:
                    everyone.update(_decode_bucket(raw))
            sets.append(everyone)
        return sorted(set.intersection(*sets))

    async def sweep(self, batch: int) -> list[tuple[str, str]]:
        ended: list[tuple[str, str]] = []
        now = self.clock()
        for n in range(ACTIVE_BUCKETS):
            raw = await self.store.get(f"sessions:active:{n}")
            if raw is None:
                continue
            due = [(sid, e) for sid, e in _decode_bucket(raw).items() if e[2] <= now][:batch]
            alive: dict[str, float] = {}
            for sid, _entry in due:
                stored = await self.load(sid)
                if stored is not None:
                    rec = stored[0]
                    alive[sid] = rec.last_heartbeat + rec.ttl
                elif (user := await self.remove(sid)) is not None:
                    ended.append((sid, user))
            if alive:
                await self._update(f"sessions:active:{n}", _moved_on(alive))
            batch -= len(due)
            if batch <= 0:
                break
        return ended


def _moved_on(alive: dict[str, float]) -> Callable[[bytes | None], Awaitable[Any]]:
    async def change(old: bytes | None) -> bytes | bool:
        bucket = _decode_bucket(old) if old is not None else {}
        for sid, check_after in alive.items():
            if sid in bucket:
                user, conn, _ = bucket[sid]
                bucket[sid] = (user, conn, check_after)
        return _encode(bucket) if bucket else False

    return change
