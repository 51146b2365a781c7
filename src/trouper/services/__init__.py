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
from ._context import CallContext as CallContext
from ._context import current_call as current_call
from ._middleware import ClientCall as ClientCall
from ._middleware import LoggingMiddleware as LoggingMiddleware
from ._middleware import Middleware as Middleware
from ._middleware import RateLimit as RateLimit
from ._middleware import TokenAuth as TokenAuth
from ._middleware import bearer as bearer
from ._middleware import issue_token as issue_token
from ._proxy import BREAKER_TOPIC as BREAKER_TOPIC
from ._proxy import ServiceProxy as ServiceProxy
from ._retry import Retry as Retry
from ._retry import RetryBudget as RetryBudget
from ._rpc import rpc as rpc
from ._rpc import service as service
from ._state import configure as configure
from ._stream import ServerStream as ServerStream

__all__ = [
    "BREAKER_TOPIC",
    "Balancer",
    "Breaker",
    "BreakerChanged",
    "CallContext",
    "CircuitBreaker",
    "ClientCall",
    "ConsistentHash",
    "LoggingMiddleware",
    "Middleware",
    "RateLimit",
    "Retry",
    "RetryBudget",
    "ServerStream",
    "ServiceProxy",
    "TokenAuth",
    "bearer",
    "configure",
    "current_call",
    "issue_token",
    "make_balancer",
    "rpc",
    "service",
]
