"""What a store is: the protocol every backend implements, and its statistics.

A store keeps two kinds of state for actors that must outlive their process:

* **logs** — append-only sequences of records under a name (a chat room's
  history). Each append gets the next id of *that* log: 1, 2, 3... strictly
  increasing and never reused, even after ``trim`` or a restart, so a reader
  can resume with ``read(log, after_id=last_seen)``.
* **key-value** entries, with ``compare_and_set`` for simple leases and
  ownership records ("room X is hosted by node Y"). ``put`` and
  ``compare_and_set`` take ``ttl=`` seconds: an expired key reads as absent
  everywhere, so a lease whose holder died simply runs out.

The two meet in a **fenced append**: ``append(log, record, fence=(key,
token))`` writes only while ``key`` holds ``token``, checked and written in
one atomic step. A writer that claimed a log with ``compare_and_set`` and was
since replaced gets ``StaleWriter`` instead of writing behind the new owner's
back (this is how a persistent actor keeps a single writer across nodes).

Records and values are ``bytes``: callers encode with msgspec, so a store
never decides how objects look on disk and never unpickles anything.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import attrs

__all__ = ["MAX_NAME_LENGTH", "Store", "StoreStatistics"]

MAX_NAME_LENGTH = 512


@attrs.frozen
class StoreStatistics:
    """A snapshot of one store's activity (as ``trio`` objects' ``statistics()``)."""

    backend: str
    closed: bool = False
    appends: int = 0
    reads: int = 0  # tail() and read()
    trims: int = 0
    gets: int = 0
    puts: int = 0
    deletes: int = 0
    compare_and_sets: int = 0
    errors: int = 0  # calls that raised a StoreError


@runtime_checkable
class Store(Protocol):
    """The interface of every state store (memory, sqlite, later redis, postgres).

    Every method is async and never blocks the Trio loop. Log names and keys
    are non-empty ``str`` of at most ``MAX_NAME_LENGTH`` characters; bad ones
    raise ``InvalidStoreArgument``. Failures of the backend raise
    ``StoreError`` (``StoreBusy``, retryable, when another writer held a lock
    too long). A store is an async context manager that closes on exit.
    """

    async def append(
        self, log: str, record: bytes, *, fence: tuple[str, bytes] | None = None
    ) -> int:
        """Append ``record`` to ``log``; return its id (the log's previous id + 1).

        With ``fence=(key, token)``, append only if ``key`` currently holds
        exactly ``token`` (and has not expired), atomically with the write;
        otherwise write nothing and raise ``StaleWriter``.
        """
        ...

    async def tail(self, log: str, n: int) -> list[tuple[int, bytes]]:
        """The last ``n`` records of ``log`` as ``(id, record)``, oldest first."""
        ...

    async def read(self, log: str, after_id: int = 0, limit: int = 100) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records with ids above ``after_id``, oldest first."""
        ...

    async def trim(self, log: str, keep_last: int) -> int:
        """Delete all but the last ``keep_last`` records; return how many went.

        Ids are not reused: the next append continues after the highest id
        ever given, even if ``keep_last`` is 0.
        """
        ...

    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None."""
        ...

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Set ``key`` to ``value`` (insert or replace).

        ``ttl``: seconds (finite, > 0) until the key expires and reads as
        absent; None keeps it until deleted. Each put sets the key's expiry
        anew: a put without ``ttl`` makes it permanent.
        """
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        ...

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes | None, *, ttl: float | None = None
    ) -> bool:
        """Atomically: if ``key`` holds ``expected`` (None: absent, or
        expired), set it to ``new`` (None: delete it) and return True;
        otherwise change nothing and return False. Atomic across processes
        sharing the backend. ``ttl`` as for ``put`` (ignored when ``new`` is
        None): renewing a lease is ``compare_and_set(k, mine, mine, ttl=...)``."""
        ...

    def statistics(self) -> StoreStatistics:
        """Counts of operations so far."""
        ...

    async def aclose(self) -> None:
        """Release the backend's resources; idempotent. Later calls raise ``StoreError``."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
