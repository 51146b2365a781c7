"""Pools that size themselves: one policy, three uses.

``PoolPolicy`` (sans-IO, in ``_policy``) decides when every trouper pool
grows and shrinks: worker pools (``node.spawn_pool``), database pools
(``trouper.pools.postgres``, ``trouper.pools.redis``) and transport
connection pools (``trouper.transports.ConnectionPool``). ``status()`` on
any of them returns a frozen ``PoolStatus``.
"""

from ._policy import PoolPolicy as PoolPolicy
from ._policy import PoolStatus as PoolStatus
from ._policy import Sizer as Sizer
from ._resource import ResourcePool as ResourcePool
from ._resource import open_resource_pool as open_resource_pool
from ._spawn_pool import pool_status as pool_status
from ._workers import GetPoolStatus as GetPoolStatus

__all__ = [
    "GetPoolStatus",
    "PoolPolicy",
    "PoolStatus",
    "ResourcePool",
    "Sizer",
    "open_resource_pool",
    "pool_status",
]
