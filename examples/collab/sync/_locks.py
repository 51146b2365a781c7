"""Locks on one document, held as leases: a pure table (no I/O; time passed in).

A lock's ``scope`` is ``"*"`` (the whole document) or a named range (any
other string). ``"*"`` conflicts with every lock of another session, a
range only with the same range (and ``"*"``). A session's own locks never
conflict with each other; acquiring a scope it already holds gives it a new
token (the old one is stale from then on).

Every grant gets a fencing token, strictly increasing per document: a write
fenced with ``(scope, token)`` is accepted only while that token is the
live lease on that scope. The ``DocumentActor`` persists every grant,
renewal and release as an event of its log (and the table in its
snapshots), so the tokens keep increasing across a failover, and a lease
survives its document moving to another node. ``now`` is wall-clock time
(``time.time()``): leases outlive the process that granted them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Leases held at once on one document (expired ones are swept first).
MAX_LOCKS = 1000
#: The longest lease, in seconds: a holder renews, it does not camp.
MAX_TTL = 3600.0
#: Characters of a range name or a session id.
MAX_SCOPE_LENGTH = 128


class LockError(ValueError):
    """A lock operation that is refused (a conflict, a stale token, a bad
    argument); the table is unchanged."""


@dataclass(frozen=True, slots=True)
class Lease:
    scope: str
    session_id: str
    token: int
    expires_at: float


def _check(scope: str, session_id: str, ttl: float | None = None) -> None:
    if not 1 <= len(scope) <= MAX_SCOPE_LENGTH:
        raise LockError(f"a lock scope has 1 to {MAX_SCOPE_LENGTH} characters, not {len(scope)}")
    if not 1 <= len(session_id) <= MAX_SCOPE_LENGTH:
        raise LockError(f"a session id has 1 to {MAX_SCOPE_LENGTH} characters")
    if ttl is not None and not (math.isfinite(ttl) and 0 < ttl <= MAX_TTL):
        raise LockError(f"a lock ttl is over 0 and at most {MAX_TTL:g} seconds, not {ttl!r}")


class LockTable:
    def __init__(self, max_locks: int = MAX_LOCKS) -> None:
        self.max_locks = max_locks
        self.leases: dict[str, Lease] = {}  # scope -> the live (or expired) lease
        self.last_token = 0

    # ---------------------------------------------------------- planning
    # Each operation is planned (checked, with nothing changed), then
    # installed: the actor persists the planned lease in between.

    def plan_acquire(self, scope: str, session_id: str, ttl: float, now: float) -> Lease:
        _check(scope, session_id, ttl)
        self.sweep(now)
        for held in self.leases.values():
            if held.session_id == session_id:
                continue
            if scope == "*" or held.scope == "*" or held.scope == scope:
                raise LockError(
                    f"lock {scope!r} conflicts with {held.scope!r} held by another session"
                    f" for {max(0.0, held.expires_at - now):.1f} s more"
                )
        if scope not in self.leases and len(self.leases) >= self.max_locks:
            raise LockError(f"a document has at most {self.max_locks} locks (MAX_LOCKS)")
        return Lease(scope, session_id, self.last_token + 1, now + ttl)

    def plan_renew(self, scope: str, session_id: str, token: int, ttl: float, now: float) -> Lease:
        _check(scope, session_id, ttl)
        held = self.check(scope, token, now)
        if held.session_id != session_id:
            raise LockError(f"lock {scope!r} (token {token}) is held by another session")
        return Lease(scope, session_id, token, now + ttl)

    def plan_release(self, scope: str, session_id: str, token: int | None) -> Lease | None:
        """The lease to release (None: not held by ``session_id``; with a
        token, only that lease)."""
        held = self.leases.get(scope)
        if held is None or held.session_id != session_id:
            return None
        if token is not None and held.token != token:
            return None
        return held

    # ---------------------------------------------------------- changing

    def install(self, lease: Lease) -> None:
        """A grant or a renewal (also in recovery: no checks here)."""
        self.leases[lease.scope] = lease
        self.last_token = max(self.last_token, lease.token)

    def remove(self, scope: str, token: int) -> None:
        held = self.leases.get(scope)
        if held is not None and held.token == token:
            del self.leases[scope]

    def sweep(self, now: float) -> list[Lease]:
        """Forget the expired leases; returns them."""
        gone = [lease for lease in self.leases.values() if lease.expires_at <= now]
        for lease in gone:
            del self.leases[lease.scope]
        return gone

    # ---------------------------------------------------------- reading

    def check(self, scope: str, token: int, now: float) -> Lease:
        """The live lease ``(scope, token)`` names, or ``LockError`` saying why not."""
        held = self.leases.get(scope)
        if held is None or held.expires_at <= now:
            raise LockError(f"stale lock token {token} for scope {scope!r}: no lock is held there")
        if held.token != token:
            raise LockError(
                f"stale lock token {token} for scope {scope!r}: the current token is newer"
            )
        return held

    def of_session(self, session_id: str) -> list[Lease]:
        return [lease for lease in self.leases.values() if lease.session_id == session_id]

    def acquire(self, scope: str, session_id: str, ttl: float, now: float) -> Lease:
        """Plan and install at once (what a caller without a log does)."""
        lease = self.plan_acquire(scope, session_id, ttl, now)
        self.install(lease)
        return lease
