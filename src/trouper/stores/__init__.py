"""State stores: where actors keep what must survive their process.

``open_store(url)`` picks the backend by scheme: ``memory://`` (tests),
``sqlite:///path.db`` (the embedded default, shared safely by several
processes). Later backends (redis, postgres) plug in with
``register_store``. Errors leave this package as ``StoreError`` (retryable
``StoreBusy`` when another writer held a lock too long),
``InvalidStoreArgument`` or ``ConfigurationError``.

A node shares one store per URL among all its users: ``await
node.store(url)`` / ``await ctx.store(url)`` return a ``SharedStore``
handle (see ``_shared`` and ``_handle``).
"""

from contextlib import AbstractAsyncContextManager

from ._api import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from ._api import Store as Store
from ._api import StoreStatistics as StoreStatistics
from ._errors import InvalidStoreArgument as InvalidStoreArgument
from ._errors import StaleWriter as StaleWriter
from ._errors import StoreBusy as StoreBusy
from ._errors import StoreError as StoreError
from ._errors import StoreUnavailable as StoreUnavailable
from ._handle import SharedStore as SharedStore
from ._memory import MemoryStore as MemoryStore
from ._memory import open_memory_store
from ._postgres import open_postgres_store
from ._registry import StoreFactory as StoreFactory
from ._registry import open_store as open_store
from ._registry import register_store as register_store
from ._sqlite import SqliteStore as SqliteStore
from ._sqlite import open_sqlite_store

__all__ = [
    "MAX_NAME_LENGTH",
    "InvalidStoreArgument",
    "MemoryStore",
    "SharedStore",
    "SqliteStore",
    "StaleWriter",
    "Store",
    "StoreBusy",
    "StoreError",
    "StoreFactory",
    "StoreStatistics",
    "StoreUnavailable",
    "open_store",
    "register_store",
]


def open_redis_store(url: str) -> AbstractAsyncContextManager[Store]:
    """``redis://`` URLs; coredis (the ``redis`` extra) is imported on first use."""
    from ._redis import open_redis_store as open_redis

    return open_redis(url)


register_store("memory", open_memory_store)
register_store("sqlite", open_sqlite_store)
# psycopg is imported when such a store is opened, not here.
register_store("postgres", open_postgres_store)
register_store("postgresql", open_postgres_store)
register_store("redis", open_redis_store)
