"""Services: groups, load balancing, retries and circuit breakers.

The policies here are pure (no trio, time passed in); the group registry
itself lives in the runtime (``node.registry``), replicated by the remote
layer.
"""

from ._balance import Balancer as Balancer
from ._balance import ConsistentHash as ConsistentHash
from ._balance import make_balancer as make_balancer
from ._breaker import Breaker as Breaker
from ._breaker import BreakerChanged as BreakerChanged
from ._breaker import CircuitBreaker as CircuitBreaker
from ._retry import Retry as Retry
from ._retry import RetryBudget as RetryBudget

__all__ = [
    "Balancer",
    "Breaker",
    "BreakerChanged",
    "CircuitBreaker",
    "ConsistentHash",
    "Retry",
    "RetryBudget",
    "make_balancer",
]
