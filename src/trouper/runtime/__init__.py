"""The runtime: nodes, cells, refs, timers, names, dead letters, errors."""

from .._errors import ActorDead as ActorDead
from .._errors import ActorError as ActorError
from .._errors import ActorNotFound as ActorNotFound
from .._errors import AskTimeout as AskTimeout
from .._errors import ConfigurationError as ConfigurationError
from .._errors import ConnectionLost as ConnectionLost
from .._errors import FrameTooLarge as FrameTooLarge
from .._errors import HandshakeFailed as HandshakeFailed
from .._errors import MailboxFull as MailboxFull
from .._errors import NameTaken as NameTaken
from .._errors import NodeDown as NodeDown
from .._errors import ProtocolError as ProtocolError
from .._errors import RemoteError as RemoteError
from .._errors import SpawnRefused as SpawnRefused
from .._errors import SupervisionError as SupervisionError
from .._errors import TransportError as TransportError
from .._errors import TrouperError as TrouperError
from .._errors import UnhandledMessage as UnhandledMessage
from ._cell import Cell as ActorContext
from ._events import DeadLetters as DeadLetters
from ._node import Node as Node
from ._node import NodeStats as NodeStats
from ._node import Registry as Registry
from ._node import open_node as open_node
from ._node import run as run
from ._ref import ActorRef as ActorRef
from ._ref import StreamReader as StreamReader
from ._remote import MemberInfo as MemberInfo
from ._spawn_node import NodeHandle as NodeHandle
from ._timers import Timer as Timer
from ._wire import message as message

__all__ = [
    "ActorContext",
    "ActorDead",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "AskTimeout",
    "ConfigurationError",
    "ConnectionLost",
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
    "ProtocolError",
    "Registry",
    "RemoteError",
    "SpawnRefused",
    "StreamReader",
    "SupervisionError",
    "Timer",
    "TransportError",
    "TrouperError",
    "UnhandledMessage",
    "message",
    "open_node",
    "run",
]
