"""trouper's wire protocol, sans-IO: envelopes, framing, handshake, codec.

Nothing here does I/O, starts tasks or reads a clock: bytes, envelopes and
the current time go in, bytes, envelopes and decisions come out. The
transports in ``trouper.transports`` do the Trio side.
"""

from ._codec import BUILTIN_TYPES as BUILTIN_TYPES
from ._codec import DecHook as DecHook
from ._codec import EncHook as EncHook
from ._codec import PayloadCodec as PayloadCodec
from ._codec import TypeRegistry as TypeRegistry
from ._codec import default_registry as default_registry
from ._codec import type_name as type_name
from ._envelopes import ENVELOPE_TYPES as ENVELOPE_TYPES
from ._envelopes import Ask as Ask
from ._envelopes import Challenge as Challenge
from ._envelopes import Credit as Credit
from ._envelopes import Envelope as Envelope
from ._envelopes import ErrorDetail as ErrorDetail
from ._envelopes import Failure as Failure
from ._envelopes import Goodbye as Goodbye
from ._envelopes import Gossip as Gossip
from ._envelopes import GroupUpdate as GroupUpdate
from ._envelopes import Heartbeat as Heartbeat
from ._envelopes import Hello as Hello
from ._envelopes import Member as Member
from ._envelopes import RegistryUpdate as RegistryUpdate
from ._envelopes import Reply as Reply
from ._envelopes import Spawn as Spawn
from ._envelopes import SpawnResult as SpawnResult
from ._envelopes import Stop as Stop
from ._envelopes import StreamCancel as StreamCancel
from ._envelopes import StreamCredit as StreamCredit
from ._envelopes import StreamEnd as StreamEnd
from ._envelopes import StreamItem as StreamItem
from ._envelopes import StreamOpen as StreamOpen
from ._envelopes import Tell as Tell
from ._envelopes import Terminated as Terminated
from ._envelopes import Unwatch as Unwatch
from ._envelopes import Watch as Watch
from ._envelopes import Welcome as Welcome
from ._envelopes import WireRef as WireRef
from ._flow import CreditGranter as CreditGranter
from ._flow import CreditLedger as CreditLedger
from ._flow import CreditWindow as CreditWindow
from ._flow import TellCredits as TellCredits
from ._framing import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from ._framing import HEADER_SIZE as HEADER_SIZE
from ._framing import FrameDecoder as FrameDecoder
from ._framing import FrameEncoder as FrameEncoder
from ._handshake import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._handshake import AcceptorConnection as AcceptorConnection
from ._handshake import Connection as Connection
from ._handshake import InitiatorConnection as InitiatorConnection
from ._phi import PhiAccrualDetector as PhiAccrualDetector
from ._ratelimit import TokenBucket as TokenBucket
from ._state import TRANSITIONS as TRANSITIONS
from ._state import ConnState as ConnState
from ._state import Direction as Direction
from ._state import Event as Event
from ._state import Role as Role
from ._state import event_of as event_of

__all__ = [
    "BUILTIN_TYPES",
    "DEFAULT_MAX_FRAME_SIZE",
    "ENVELOPE_TYPES",
    "HEADER_SIZE",
    "PROTOCOL_VERSION",
    "TRANSITIONS",
    "AcceptorConnection",
    "Ask",
    "Challenge",
    "ConnState",
    "Connection",
    "Credit",
    "CreditGranter",
    "CreditLedger",
    "CreditWindow",
    "DecHook",
    "Direction",
    "EncHook",
    "Envelope",
    "ErrorDetail",
    "Event",
    "Failure",
    "FrameDecoder",
    "FrameEncoder",
    "Goodbye",
    "Gossip",
    "GroupUpdate",
    "Heartbeat",
    "Hello",
    "InitiatorConnection",
    "Member",
    "PayloadCodec",
    "PhiAccrualDetector",
    "RegistryUpdate",
    "Reply",
    "Role",
    "Spawn",
    "SpawnResult",
    "Stop",
    "StreamCancel",
    "StreamCredit",
    "StreamEnd",
    "StreamItem",
    "StreamOpen",
    "Tell",
    "TellCredits",
    "Terminated",
    "TokenBucket",
    "TypeRegistry",
    "Unwatch",
    "Watch",
    "Welcome",
    "WireRef",
    "default_registry",
    "event_of",
    "type_name",
]
