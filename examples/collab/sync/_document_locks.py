"""The ``DocumentActor``'s lock handlers: leases acquired, renewed and
released, and a session's locks released when its ``SessionEnded`` arrives.

A mixin of ``DocumentActor`` (``_document``), kept apart for size. The
table (``_locks``) is planned first (checked, nothing changed), then the
grant or release is persisted as an event, whose ``apply`` installs it: so
tokens keep increasing across a failover, and nothing is granted that is
not in the log.
"""

# No ``from __future__ import annotations``: handler annotations are read at runtime.
import time
from typing import TYPE_CHECKING

import trouper

from .. import _shared
from ._locks import Lease, LockError, LockTable
from ._protocol import AcquireLock, LockGranted, LockLease, LockReleased, ReleaseLock, RenewLock


def granted(lease: Lease) -> LockGranted:
    return LockGranted(lease.scope, lease.session_id, lease.token, lease.expires_at)


class LockHandlers:
    # What the DocumentActor provides.
    locks: LockTable

    if TYPE_CHECKING:

        def _touch(self) -> None: ...
        def _refuse(self, exc: trouper.TrouperError) -> None: ...
        async def _persist(self, event: LockGranted | LockReleased) -> int: ...

    @trouper.handler
    async def acquire_lock(self, msg: AcquireLock) -> LockLease | None:
        self._touch()
        try:
            lease = self.locks.plan_acquire(msg.scope, msg.session_id, msg.ttl, time.time())
        except LockError as exc:
            self._refuse(trouper.InvalidArgument(str(exc)))
            return None
        await self._persist(granted(lease))
        return LockLease(lease.scope, lease.token, msg.ttl)

    @trouper.handler
    async def renew_lock(self, msg: RenewLock) -> LockLease | None:
        self._touch()
        now = time.time()
        try:
            lease = self.locks.plan_renew(msg.scope, msg.session_id, msg.token, msg.ttl, now)
        except LockError as exc:
            self._refuse(trouper.InvalidArgument(str(exc)))
            return None
        await self._persist(granted(lease))
        return LockLease(lease.scope, lease.token, msg.ttl)

    @trouper.handler
    async def release_lock(self, msg: ReleaseLock) -> bool:
        self._touch()
        lease = self.locks.plan_release(msg.scope, msg.session_id, msg.token)
        if lease is None:
            return False
        await self._persist(LockReleased(lease.scope, lease.token))
        return True

    @trouper.handler
    async def session_ended(self, msg: _shared.SessionEnded) -> None:
        for lease in self.locks.of_session(msg.session_id):
            await self._persist(LockReleased(lease.scope, lease.token))
