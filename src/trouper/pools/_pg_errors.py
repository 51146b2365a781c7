"""The one edge where psycopg errors become trouper ``StoreError`` subclasses.

Above a PostgreSQL pool (and the ``postgres://`` store), code sees only
``StoreError``: it decides from ``is_retryable`` whether to try again, and
never imports psycopg. The decision is made from the SQLSTATE, which is
stable across PostgreSQL versions and languages, never from message text:

========================  ==========================  =========
SQLSTATE                  trouper error               retryable
========================  ==========================  =========
40001, 40P01, 55P03       ``TransactionConflict``     yes
08xxx, 57P01-57P03,       ``StoreUnavailable``        yes
53300, no SQLSTATE
(connection lost)
57014 (statement timeout) ``StoreTimeout``            yes
23xxx (unique, FK...)     ``StoreConflict``           no
anything else (42601...)  ``StoreError``              no
========================  ==========================  =========

This module imports psycopg only inside ``map_exceptions``: the error
classes are importable (and re-exported by ``trouper.stores``) without the
driver installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from trouper._errors import TrouperError
from trouper.stores._errors import InvalidStoreArgument, StoreError, StoreUnavailable

__all__ = [
    "StoreConflict",
    "StoreTimeout",
    "StoreUnavailable",
    "TransactionConflict",
    "map_exceptions",
    "translate",
]


class TransactionConflict(StoreError):
    """The transaction lost a race with another one (serialization failure,
    deadlock, a lock that could not be taken). Retryable: run the whole
    transaction again."""

    error_code = "store-transaction-conflict"
    is_retryable = True
    retry_delay = 0.01


class StoreTimeout(StoreError, TimeoutError):
    """The server cancelled the statement (``statement_timeout``)."""

    error_code = "store-timeout"
    is_retryable = True
    retry_delay = 0.1


class StoreConflict(StoreError):
    """The write breaks a constraint (a unique key that exists already, a
    foreign key...). Not retryable: the same write will fail the same way."""

    error_code = "store-conflict"


_CONFLICT = frozenset({"40001", "40P01", "55P03"})
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})


def translate(exc: Exception, where: str) -> StoreError:
    """The ``StoreError`` that stands for a psycopg error (``exc`` is kept as ``__cause__``)."""
    import psycopg

    state = getattr(exc, "sqlstate", None)
    text = f"{where}: {str(exc).strip() or type(exc).__name__}"
    error: StoreError
    if state in _CONFLICT:
        error = TransactionConflict(text)
    elif state is not None and (state.startswith("08") or state in _UNAVAILABLE):
        error = StoreUnavailable(text)
    elif state == "57014":
        error = StoreTimeout(text)
    elif state is not None and state.startswith("23"):
        error = StoreConflict(text)
    elif state is None and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # No SQLSTATE: libpq itself failed (connection refused, reset, closed).
        error = StoreUnavailable(text)
    elif state is None and isinstance(exc, psycopg.ProgrammingError):
        # Raised before anything reached the server: placeholders and
        # arguments that do not match, a value psycopg cannot adapt.
        error = InvalidStoreArgument(text)
    else:
        error = StoreError(text)
    error.__cause__ = exc
    return error


@contextmanager
def map_exceptions(where: str) -> Iterator[None]:
    """Translate psycopg errors raised in the block (see the module table).

    trouper errors pass through untouched; ``trio.Cancelled`` is not an
    ``Exception`` and is never converted.
    """
    try:
        yield
    except TrouperError:
        raise
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise translate(exc, where) from exc
        raise
