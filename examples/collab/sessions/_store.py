"""Where sessions live: the ``SessionStore`` interface, chosen by URL.

``redis://`` keeps AetherFlow's key layout (``_redis_store``); every other
URL (``sqlite:///`` by default, ``memory://``, ``postgres://``) goes through
trouper's store interface (``_kv_store``). Both keep a companion entry per
session that outlives the TTL'd record (who the user and connection were),
so a sweep can still clean the indexes after the record has expired.

Which writer announces a session's end: whoever removes its companion entry
(``remove`` or ``sweep`` returning it). That removal is atomic, so two nodes
never both see themselves as the remover.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal, Protocol

import trouper

from ._record import SessionRecord

#: What a write to a live session's record found: written; the record is
#: gone (expired or deleted); or another node took the session over.
WriteOutcome = Literal["ok", "gone", "taken"]


class CreateRefused(Exception):
    """A create the store refused (connection in use, too many sessions of
    the user); turned into ``trouper.InvalidArgument`` by the service."""


class SessionStore(Protocol):
    async def create(
        self, record: SessionRecord, owner: str, max_per_user: int
    ) -> tuple[SessionRecord, bool]:
        """Write a new session and its index entries, atomically with the
        checks: a live session of the same user on ``record.connection`` is
        returned as it is (``False``: not created); one of another user, or
        ``max_per_user`` live sessions of the user, raise ``CreateRefused``."""
        ...

    async def load(self, session_id: str) -> tuple[SessionRecord, str] | None:
        """The live record and the node id that owns its actor, or None."""
        ...

    async def write(self, record: SessionRecord, owner: str) -> WriteOutcome:
        """Rewrite a live session (heartbeat, data) and renew its TTL, if
        ``owner`` still owns it."""
        ...

    async def claim(self, session_id: str, expected: str, owner: str) -> bool:
        """Make ``owner`` the session's owner if ``expected`` still is."""
        ...

    async def remove(self, session_id: str) -> str | None:
        """Delete the record, its index entries and its companion entry; the
        session's user if this call removed the companion entry."""
        ...

    async def ids(
        self, user: str | None, connection: str | None, active: bool, limit: int
    ) -> list[str]:
        """Ids from the indexes (sorted; possibly expired ones: callers load
        each and keep the live ones)."""
        ...

    async def sweep(self, batch: int) -> list[tuple[str, str]]:
        """Remove up to ``batch`` sessions whose record has expired, with
        their index entries; their ``(id, user)``."""
        ...


@asynccontextmanager
async def open_session_store(node: trouper.Node, url: str | None) -> AsyncIterator[SessionStore]:
    """The store for ``url``: a Redis pool of its own for ``redis://``, the
    node's shared trouper store otherwise (None: the node's default). The
    pool runs tasks, so the task that enters this must leave it."""
    if url is not None and url.startswith("redis://"):
        from ._redis_store import open_redis_session_store

        async with open_redis_session_store(url) as store:
            yield store
    else:
        from ._kv_store import KvSessionStore

        async with await node.store(url) as shared:
            yield KvSessionStore(shared)
