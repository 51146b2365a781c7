"""The one edge where coredis and socket errors become ``StoreError``.

Above a Redis pool or store, code sees only trouper errors and decides from
``is_retryable`` whether to try again:

* the server is unreachable, the connection broke, a command timed out, or
  the server is still loading its data: ``StoreUnavailable``, retryable (a
  write that failed this way may or may not have been applied, as with any
  remote write);
* the server runs a long script (``BUSY``): ``StoreBusy``, retryable;
* everything else (a wrong-type or syntax error, a bad password, an
  unknown command): ``StoreError``, not retryable, since trying again sends
  the same mistake.

coredis raises its errors alone or, from inside its task groups, wrapped in
an exception group; both forms are translated. The original stays reachable
as ``__cause__``. ``trio.Cancelled`` is not an ``Exception`` and is never
converted; trouper's own errors (``PoolTimeout``...) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from trouper._errors import TrouperError
from trouper.stores._errors import StoreBusy, StoreError, StoreUnavailable

__all__ = ["map_exceptions", "translate"]


def translate(exc: BaseException, where: str) -> StoreError | None:
    """The ``StoreError`` for a coredis or OS error, or None if ``exc`` is neither."""
    import coredis.exceptions as e

    if isinstance(exc, TrouperError):
        return None  # already ours (a PoolTimeout is also a TimeoutError)
    text = f"{where}: {exc}" if str(exc) else f"{where}: {type(exc).__name__}"
    if isinstance(exc, e.ConnectionError | OSError | TimeoutError | trio.TooSlowError):
        return StoreUnavailable(text)  # BusyLoadingError is a ConnectionError too
    if isinstance(exc, e.TryAgainError | e.ReadOnlyError):
        return StoreUnavailable(text)  # a failover under way: a later try reaches the new primary
    if isinstance(exc, e.ResponseError) and str(exc).startswith("BUSY"):
        return StoreBusy(f"{text} (a script is running on the server)")
    if isinstance(exc, e.RedisError):
        return StoreError(text)
    return None


@contextmanager
def map_exceptions(where: str) -> Iterator[None]:
    """Translate what coredis and the OS raise in the block (see the module doc).

    ``where`` names the server in messages, without its password.
    """
    try:
        yield
    except TrouperError:
        raise
    except BaseExceptionGroup as group:
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        mapped = translate(first, where) if isinstance(first, Exception) else None
        if mapped is None or group.split(trio.Cancelled)[0] is not None:
            raise
        raise mapped from group
    except Exception as exc:  # after the groups: an ExceptionGroup is an Exception too
        mapped = translate(exc, where)
        if mapped is None:
            raise
        raise mapped from exc
