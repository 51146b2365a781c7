"""The runtime: the local kernel of a node.

Cells, mailboxes, refs, timers, names, events, supervision carried out, and
the ``Node`` that owns them. It knows nothing of networks: ``trouper.remote``
plugs in through ``RemoteLayer``, and the layers above use the documented
interface below (``Kernel``, ``Cell``, ``cell_of``, ``node_of``...), never the
runtime's private attributes.
"""

from ..protocols import default_registry as _default_registry
from ._admin import child_cells as child_cells
from ._admin import fail_actor as fail_actor
from ._admin import restart_actor as restart_actor
from ._admin import state_name as state_name
from ._cell import Cell as Cell
from ._channels import Channel as Channel
from ._channels import ChannelRequest as ChannelRequest
from ._channels import ChannelSide as ChannelSide
from ._channels import opened as open_channel_side
from ._events import DeadLetters as DeadLetters
from ._events import EventBridge as EventBridge
from ._events import EventStatistics as EventStatistics
from ._host import hosted as hosted
from ._kernel import Kernel as Kernel
from ._mailbox import ParkedItem as ParkedItem
from ._names import Registry as Registry
from ._node import MemberInfo as MemberInfo
from ._node import Node as Node
from ._node import NodeHandle as NodeHandle
from ._node import NodeStats as NodeStats
from ._ref import ActorRef as ActorRef
from ._ref import Reply as Reply
from ._ref import current_sender as current_sender
from ._spi import RemoteLayer as RemoteLayer
from ._spi import Watcher as Watcher
from ._spi import cell_of as cell_of
from ._spi import node_of as node_of
from ._streams import ConsumerGone as ConsumerGone
from ._streams import StreamReader as StreamReader
from ._streams import StreamSink as StreamSink
from ._subscribers import SubscriberStatistics as SubscriberStatistics
from ._subscribers import Subscription as Subscription
from ._timers import Timer as Timer

#: ActorRefs may be sent as payloads (and inside any message).
_default_registry.register(ActorRef, "trouper:ActorRef")

__all__ = [
    "ActorRef",
    "Cell",
    "Channel",
    "ChannelRequest",
    "ChannelSide",
    "ConsumerGone",
    "DeadLetters",
    "EventBridge",
    "EventStatistics",
    "Kernel",
    "MemberInfo",
    "Node",
    "NodeHandle",
    "NodeStats",
    "ParkedItem",
    "Registry",
    "RemoteLayer",
    "Reply",
    "StreamReader",
    "StreamSink",
    "SubscriberStatistics",
    "Subscription",
    "Timer",
    "Watcher",
    "cell_of",
    "child_cells",
    "current_sender",
    "fail_actor",
    "hosted",
    "node_of",
    "open_channel_side",
    "restart_actor",
    "state_name",
]
