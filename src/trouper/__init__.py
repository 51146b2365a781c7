"""trouper: a structured-concurrency actor runtime for Python on Trio.

This module is the public API; everything is re-exported from the subpackages
(``tests/test_public_api.py`` pins the names). docs/architecture.md tells which
subpackage holds what.
"""

from . import pools as pools
from ._errors import ActorDead as ActorDead
from ._errors import ActorError as ActorError
from ._errors import ActorKilled as ActorKilled
from ._errors import ActorNotFound as ActorNotFound
from ._errors import AskTimeout as AskTimeout
from ._errors import CallError as CallError
from ._errors import ChannelClosed as ChannelClosed
from ._errors import CircuitOpen as CircuitOpen
from ._errors import ConfigurationError as ConfigurationError
from ._errors import ConnectionLost as ConnectionLost
from ._errors import DiscoveryUnavailable as DiscoveryUnavailable
from ._errors import Forbidden as Forbidden
from ._errors import FrameTooLarge as FrameTooLarge
from ._errors import HandshakeFailed as HandshakeFailed
from ._errors import InvalidArgument as InvalidArgument
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MailboxFull as MailboxFull
from ._errors import NameTaken as NameTaken
from ._errors import NodeDown as NodeDown
from ._errors import PoolClosed as PoolClosed
from ._errors import PoolError as PoolError
from ._errors import PoolTimeout as PoolTimeout
from ._errors import ProtocolError as ProtocolError
from ._errors import RateLimited as RateLimited
from ._errors import RemoteError as RemoteError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import SpawnRefused as SpawnRefused
from ._errors import SubscriberOverflow as SubscriberOverflow
from ._errors import SupervisionError as SupervisionError
from ._errors import TransportError as TransportError
from ._errors import TrouperError as TrouperError
from ._errors import Unauthorized as Unauthorized
from ._errors import UnhandledMessage as UnhandledMessage
from ._open import open_node as open_node
from ._open import run as run
from .actors import Actor as Actor
from .actors import ActorContext as ActorContext
from .actors import DeadLetter as DeadLetter
from .actors import PoisonPill as PoisonPill
from .actors import SubscriptionEnded as SubscriptionEnded
from .actors import Terminated as Terminated
from .actors import handler as handler
from .actors import message as message
from .observability import AdminConfig as AdminConfig
from .observability import AdminHandle as AdminHandle
from .observability import configure_logging as configure_logging
from .observability import metrics_registry as metrics_registry
from .observability import metrics_text as metrics_text
from .persistence import AtLeastOnceDelivery as AtLeastOnceDelivery
from .persistence import PersistentActor as PersistentActor
from .pools import PoolPolicy as PoolPolicy
from .pools import PoolStatus as PoolStatus
from .remote import NodeHandle as NodeHandle
from .runtime import ActorRef as ActorRef
from .runtime import Channel as Channel
from .runtime import DeadLetters as DeadLetters
from .runtime import EventStatistics as EventStatistics
from .runtime import MemberInfo as MemberInfo
from .runtime import Node as Node
from .runtime import NodeStats as NodeStats
from .runtime import Registry as Registry
from .runtime import StreamReader as StreamReader
from .runtime import SubscriberStatistics as SubscriberStatistics
from .runtime import Subscription as Subscription
from .runtime import Timer as Timer
from .services import Breaker as Breaker
from .services import BreakerChanged as BreakerChanged
from .services import CallContext as CallContext
from .services import ConsistentHash as ConsistentHash
from .services import LoggingMiddleware as LoggingMiddleware
from .services import Middleware as Middleware
from .services import RateLimit as RateLimit
from .services import Retry as Retry
from .services import TokenAuth as TokenAuth
from .services import bearer as bearer
from .services import current_call as current_call
from .services import issue_token as issue_token
from .services import rpc as rpc
from .services import service as service
from .stores import StaleWriter as StaleWriter
from .supervisors import Backoff as Backoff
from .supervisors import ChildSpec as ChildSpec
from .supervisors import OneForAll as OneForAll
from .supervisors import OneForOne as OneForOne
from .supervisors import RestartIntensity as RestartIntensity
from .supervisors import RestForOne as RestForOne
from .supervisors import Strategy as Strategy
from .supervisors import Supervisor as Supervisor
from .supervisors import child as child
from .transports import TLSConfig as TLSConfig

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "ActorContext",
    "ActorDead",
    "ActorError",
    "ActorKilled",
    "ActorNotFound",
    "ActorRef",
    "AdminConfig",
    "AdminHandle",
    "AskTimeout",
    "AtLeastOnceDelivery",
    "Backoff",
    "Breaker",
    "BreakerChanged",
    "CallContext",
    "CallError",
    "Channel",
    "ChannelClosed",
    "ChildSpec",
    "CircuitOpen",
    "ConfigurationError",
    "ConnectionLost",
    "ConsistentHash",
    "DeadLetter",
    "DeadLetters",
    "DiscoveryUnavailable",
    "EventStatistics",
    "Forbidden",
    "FrameTooLarge",
    "HandshakeFailed",
    "InvalidArgument",
    "LocalProtocolError",
    "LoggingMiddleware",
    "MailboxFull",
    "MemberInfo",
    "Middleware",
    "NameTaken",
    "Node",
    "NodeDown",
    "NodeHandle",
    "NodeStats",
    "OneForAll",
    "OneForOne",
    "PersistentActor",
    "PoisonPill",
    "PoolClosed",
    "PoolError",
    "PoolPolicy",
    "PoolStatus",
    "PoolTimeout",
    "ProtocolError",
    "RateLimit",
    "RateLimited",
    "Registry",
    "RemoteError",
    "RemoteProtocolError",
    "RestForOne",
    "RestartIntensity",
    "Retry",
    "SpawnRefused",
    "StaleWriter",
    "Strategy",
    "StreamReader",
    "SubscriberOverflow",
    "SubscriberStatistics",
    "Subscription",
    "SubscriptionEnded",
    "SupervisionError",
    "Supervisor",
    "TLSConfig",
    "Terminated",
    "Timer",
    "TokenAuth",
    "TransportError",
    "TrouperError",
    "Unauthorized",
    "UnhandledMessage",
    "bearer",
    "child",
    "configure_logging",
    "current_call",
    "handler",
    "issue_token",
    "message",
    "metrics_registry",
    "metrics_text",
    "open_node",
    "rpc",
    "run",
    "service",
]
