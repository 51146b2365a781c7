"""Pools that size themselves: one policy, three uses.

``PoolPolicy`` (sans-IO, in ``_policy``) decides when every trouper pool
grows and shrinks: worker pools (``node.spawn_pool``), database pools
(``trouper.pools.postgres``, ``trouper.pools.redis``) and transport
connection pools (``trouper.transports.ConnectionPool``). ``status()`` on
any of them returns a frozen ``PoolStatus``.
"""

from ._pg_errors import StoreConflict as StoreConflict
from ._pg_errors import StoreTimeout as StoreTimeout
from ._pg_errors import TransactionConflict as TransactionConflict
from ._policy import PoolPolicy as PoolPolicy
from ._policy import PoolStatus as PoolStatus
from ._policy import Sizer as Sizer
from ._postgres import PgPool as PgPool
from ._postgres import PgTransaction as PgTransaction
from ._postgres import postgres as postgres
from ._postgres import postgres_pool as postgres_pool
from ._redis import RedisPool as RedisPool
from ._redis import redis as redis
from ._resource import ResourcePool as ResourcePool
from ._resource import open_resource_pool as open_resource_pool
from ._spawn_pool import pool_status as pool_status
from ._workers import GetPoolStatus as GetPoolStatus

__all__ = [
    "GetPoolStatus",
    "PgPool",
    "PgTransaction",
    "PoolPolicy",
    "PoolStatus",
    "RedisPool",
    "ResourcePool",
    "Sizer",
    "StoreConflict",
    "StoreTimeout",
    "TransactionConflict",
    "open_resource_pool",
    "pool_status",
    "postgres",
    "postgres_pool",
    "redis",
]
