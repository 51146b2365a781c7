"""Services: what users build microservices with on top of actors.

The policies here are pure (no trio, time passed in): load balancing,
retries and their budget, circuit breakers. The group registry itself lives
in the runtime (``node.registry``), replicated by the remote layer; two-way
channels (``trouper.Channel``, ``ref.channel``) live in the runtime next to
streams, and this package holds the entry point that lets a service method
take one (``channel_parameter``, ``channel_method``).
"""

from ..runtime import Channel as Channel
from ._balance import Balancer as Balancer
from ._balance import ConsistentHash as ConsistentHash
from ._balance import make_balancer as make_balancer
from ._breaker import Breaker as Breaker
from ._breaker import BreakerChanged as BreakerChanged
from ._breaker import CircuitBreaker as CircuitBreaker
from ._channels import channel_method as channel_method
from ._channels import channel_parameter as channel_parameter
from ._retry import Retry as Retry
from ._retry import RetryBudget as RetryBudget

__all__ = [
    "Balancer",
    "Breaker",
    "BreakerChanged",
    "Channel",
    "CircuitBreaker",
    "ConsistentHash",
    "Retry",
    "RetryBudget",
    "channel_method",
    "channel_parameter",
    "make_balancer",
]
