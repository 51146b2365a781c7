"""trouper: a structured-concurrency actor runtime for Python on Trio.

This module is the public API; everything is re-exported from the subpackages.
(``supervisors`` is imported first: ``Supervisor`` is an actor and ``Actor``
defaults to a supervision strategy, and this order resolves that loop.)
"""

from .actors import Actor as Actor
from .actors import DeadLetter as DeadLetter
from .actors import Terminated as Terminated
from .actors import handler as handler
from .runtime import ActorContext as ActorContext
from .runtime import ActorDead as ActorDead
from .runtime import ActorError as ActorError
from .runtime import ActorNotFound as ActorNotFound
from .runtime import ActorRef as ActorRef
from .runtime import AskTimeout as AskTimeout
from .runtime import ConfigurationError as ConfigurationError
from .runtime import ConnectionLost as ConnectionLost
from .runtime import DeadLetters as DeadLetters
from .runtime import FrameTooLarge as FrameTooLarge
from .runtime import HandshakeFailed as HandshakeFailed
from .runtime import MailboxFull as MailboxFull
from .runtime import MemberInfo as MemberInfo
from .runtime import NameTaken as NameTaken
from .runtime import Node as Node
from .runtime import NodeDown as NodeDown
from .runtime import NodeHandle as NodeHandle
from .runtime import NodeStats as NodeStats
from .runtime import ProtocolError as ProtocolError
from .runtime import Registry as Registry
from .runtime import RemoteError as RemoteError
from .runtime import SpawnRefused as SpawnRefused
from .runtime import StreamReader as StreamReader
from .runtime import SupervisionError as SupervisionError
from .runtime import Timer as Timer
from .runtime import TransportError as TransportError
from .runtime import TrouperError as TrouperError
from .runtime import UnhandledMessage as UnhandledMessage
from .runtime import message as message
from .runtime import open_node as open_node
from .runtime import run as run
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
    "ActorNotFound",
    "ActorRef",
    "AskTimeout",
    "Backoff",
    "ChildSpec",
    "ConfigurationError",
    "ConnectionLost",
    "DeadLetter",
    "DeadLetters",
    "FrameTooLarge",
    "HandshakeFailed",
    "MailboxFull",
    "MemberInfo",
    "NameTaken",
    "Node",
    "NodeDown",
    "NodeHandle",
    "NodeStats",
    "OneForAll",
    "OneForOne",
    "ProtocolError",
    "Registry",
    "RemoteError",
    "RestForOne",
    "RestartIntensity",
    "SpawnRefused",
    "Strategy",
    "StreamReader",
    "SupervisionError",
    "Supervisor",
    "TLSConfig",
    "Terminated",
    "Timer",
    "TransportError",
    "TrouperError",
    "UnhandledMessage",
    "child",
    "handler",
    "message",
    "open_node",
    "run",
]
