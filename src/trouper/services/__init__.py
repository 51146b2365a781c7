"""Services: what users build microservices with on top of actors.

The policies here are pure (no trio, time passed in): load balancing,
retries and their budget, circuit breakers. The group registry itself lives
in the runtime (``node.registry``), replicated by the remote layer; two-way
channels (``trouper.Channel``, ``ref.channel``) live in the runtime next to
streams, and this package holds the entry point that lets a service method
take one (``channel_parameter``, ``channel_method``). Above them: typed
RPC (``@service``, ``@rpc``, proxies, ``current_call``) and its middleware.
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
from ._chanrpc import ChannelOpening as ChannelOpening
from ._chanrpc import ServiceChannel as ServiceChannel
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
    "Channel",
    "ChannelOpening",
    "CircuitBreaker",
    "ClientCall",
    "ConsistentHash",
    "LoggingMiddleware",
    "Middleware",
    "RateLimit",
    "Retry",
    "RetryBudget",
    "ServerStream",
    "ServiceChannel",
    "ServiceProxy",
    "TokenAuth",
    "bearer",
    "channel_method",
    "channel_parameter",
    "configure",
    "current_call",
    "issue_token",
    "make_balancer",
    "rpc",
    "service",
]
