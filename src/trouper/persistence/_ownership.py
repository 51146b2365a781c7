"""A single writer per persistence id: the owner key, its fencing token, and
where an actor's events and snapshots live in a store.

Starting (or restarting) a persistent actor *takes over* its id: it swaps a
fresh token into the owner key with ``compare_and_set`` before it reads
anything, and every write it makes afterwards is an append fenced on that
token. The newest claim therefore always wins, at once, which is what a
restart on another node after a ``kill -9`` needs (no lease to wait out);
an older instance that is still alive (a partitioned node, a racing start)
finds out at its next write, which fails with ``StaleWriter`` having
written nothing, and stops.
"""

from __future__ import annotations

import itertools
import secrets
from collections import OrderedDict
from collections.abc import Hashable

from .._errors import ConfigurationError
from ..stores import MAX_NAME_LENGTH, Store, StoreBusy

__all__ = ["Keys", "StaleMarks", "claim", "new_token", "release"]

_PREFIX = "trouper.persist/"
#: Room left for the longest suffix ("/snapshots") under MAX_NAME_LENGTH.
MAX_ID_LENGTH = MAX_NAME_LENGTH - len(_PREFIX) - len("/snapshots")
#: Claims lost to other claimers in a row before giving up (StoreBusy, retryable).
MAX_CLAIM_ATTEMPTS = 64

_counter = itertools.count(1)
_process = secrets.token_hex(6)


class Keys:
    """The store names of one persistence id."""

    __slots__ = ("events", "owner", "snapshots")

    def __init__(self, persistence_id: object) -> None:
        if not isinstance(persistence_id, str) or not 1 <= len(persistence_id) <= MAX_ID_LENGTH:
            raise ConfigurationError(
                f"persistence_id must be a str of 1 to {MAX_ID_LENGTH} characters,"
                f" not {persistence_id!r}"
            )
        base = _PREFIX + persistence_id
        self.owner = base + "/owner"
        self.events = base + "/events"
        self.snapshots = base + "/snapshots"


def new_token(node_id: str) -> bytes:
    """Unique per claim: the node, this process, and a counter."""
    return f"{node_id}/{_process}/{next(_counter)}".encode()


async def claim(store: Store, key: str, token: bytes) -> None:
    """Make ``token`` the owner of ``key``, whoever held it before."""
    current = await store.get(key)
    for _ in range(MAX_CLAIM_ATTEMPTS):
        if await store.compare_and_set(key, current, token):
            return
        current = await store.get(key)  # another claimer won this round: take over from it
    raise StoreBusy(f"{key}: {MAX_CLAIM_ATTEMPTS} claims in a row lost to other claimers")


async def release(store: Store, key: str, token: bytes) -> None:
    """Give ``key`` up if ``token`` still holds it (a stopping owner)."""
    await store.compare_and_set(key, token, None)


class StaleMarks:
    """The actors found stale, so that every later restart of one stops
    instead of claiming the id back from the newer owner.

    Keyed by the actor's ref: a restart keeps it, a new spawn gets a new one,
    so a mark never stops an actor started afresh. Kept for good (a
    ``permanent`` actor is restarted even after it stops itself, and must
    stop again each time); bounded: past ``limit`` marks the oldest goes.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._marks: OrderedDict[Hashable, None] = OrderedDict()

    def mark(self, ref: Hashable) -> None:
        self._marks[ref] = None
        while len(self._marks) > self.limit:
            self._marks.popitem(last=False)

    def __contains__(self, ref: Hashable) -> bool:
        return ref in self._marks

    def __len__(self) -> int:
        return len(self._marks)


stale_marks = StaleMarks()
