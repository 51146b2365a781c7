"""Store errors, and the one edge where sqlite3 errors become them.

Above a store, code sees only ``StoreError`` (or ``ConfigurationError`` for a
bad URL), so an actor decides from ``is_retryable`` whether to try again
instead of knowing which database library raised what. The original
exception stays reachable as ``__cause__`` for logs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from trouper._errors import TrouperError

__all__ = [
    "InvalidStoreArgument",
    "StaleWriter",
    "StoreBusy",
    "StoreError",
    "StoreUnavailable",
    "is_busy",
    "map_exceptions",
]


class StoreError(TrouperError):
    """A state store failed (I/O error, corrupt file, closed store...)."""

    error_code = "store"


class StoreBusy(StoreError):
    """Another writer held the database lock for longer than the busy timeout.

    Retryable: the lock is released when the other writer commits, so trying
    again a little later normally succeeds.
    """

    error_code = "store-busy"
    is_retryable = True
    retry_delay = 0.05


class StoreUnavailable(StoreError):
    """A store is not reachable right now: its server could not be reached
    or the connection broke or timed out mid-command (Redis, PostgreSQL), or
    a node's shared store is between hosts (its host actor is restarting).

    Retryable: the server or the host comes back. A write that failed this
    way may or may not have been applied, as with any remote write.
    """

    error_code = "store-unavailable"
    is_retryable = True
    retry_delay = 0.1


class InvalidStoreArgument(StoreError, ValueError):
    """A log name, key or count the store cannot take (empty, too long...).

    Also a ``ValueError``: it is the caller's bug, as with any bad argument.
    """

    error_code = "store-invalid-argument"


class StaleWriter(StoreError):
    """A fenced ``append`` found its fence key no longer holding the writer's token.

    Another writer has claimed the log since (a persistent actor started on
    another node, say), so this one must stop writing: nothing was written.
    Not retryable: trying again cannot make the token current again. An
    actor that fails with it is stopped, not restarted, by the default
    supervision decider (``stops_actor``).
    """

    error_code = "store-stale-writer"
    stops_actor = True


# Primary result codes (the low byte of the extended code): SQLITE_BUSY means
# another connection holds the lock, SQLITE_LOCKED a conflict inside one
# shared cache. Both go away by themselves, unlike every other failure.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    text = str(exc).lower()  # errors raised before a code exists carry only text
    return "database is locked" in text or "database is busy" in text


@contextmanager
def map_exceptions(where: str) -> Iterator[None]:
    """Translate ``sqlite3.Error`` and ``OSError`` raised in the block.

    Busy/locked becomes the retryable ``StoreBusy``; everything else becomes
    ``StoreError``. ``where`` names the store in messages. trouper errors pass
    through untouched and ``trio.Cancelled`` (not an ``Exception``) is never
    converted.
    """
    try:
        yield
    except TrouperError:
        raise
    except sqlite3.Error as exc:
        if is_busy(exc):
            raise StoreBusy(
                f"{where}: {exc} (another writer held the lock past the busy timeout)"
            ) from exc
        raise StoreError(f"{where}: {exc}") from exc
    except OSError as exc:  # creating the parent directory, mostly
        raise StoreError(f"{where}: {exc.strerror or exc}") from exc
