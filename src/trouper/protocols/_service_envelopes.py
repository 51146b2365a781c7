"""The envelopes of the services layer: two-way channels, group
memberships and cluster-wide events (part of the one tagged union,
``_envelopes.Envelope``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from ._wire_types import U64, Credits, EnvelopeBase, ErrorDetail, NodeId, WireRef

# -- two-way channels --------------------------------------------------------
#
# A channel's id is chosen by the node that opens it; ``opener`` says which
# end sent a frame (True: the opening node), so both nodes may open channels
# with the same id on one connection without clashing. Each end grants the
# other credit for the items it may send, as for streams.


class ChannelOpen(EnvelopeBase, tag=25, frozen=True, array_like=True, gc=False):
    """Open a channel with ``target``'s handler for the message, granting it
    ``credit`` items up front; the target's node answers with a
    ``ChannelCredit`` (its own window) or a ``ChannelDone`` carrying why not."""

    id: U64
    target: WireRef
    type_name: str
    payload: msgspec.Raw
    credit: Credits
    sender: WireRef | None = None
    trace: str | None = None  # W3C traceparent, when the opener traces


class ChannelItem(EnvelopeBase, tag=26, frozen=True, array_like=True, gc=False):
    id: U64
    opener: bool
    type_name: str
    payload: msgspec.Raw


class ChannelCredit(EnvelopeBase, tag=27, frozen=True, array_like=True, gc=False):
    id: U64
    opener: bool
    n: Credits


class ChannelEnd(EnvelopeBase, tag=28, frozen=True, array_like=True, gc=False):
    """The sender sends no more items on this channel (it may still receive)."""

    id: U64
    opener: bool


class ChannelDone(EnvelopeBase, tag=29, frozen=True, array_like=True, gc=False):
    """The sender is done with the channel: cleanly, or (``error``) because
    it failed, was cancelled or refused the channel."""

    id: U64
    opener: bool
    error: ErrorDetail | None = None


# -- groups ------------------------------------------------------------------


class GroupUpdate(EnvelopeBase, tag=45, frozen=True, array_like=True, gc=False):
    """Group memberships owned by ``node`` (group -> refs, in join order);
    with ``snapshot`` the joined entries replace everything previously known
    from that node instead of patching it. A large snapshot is sent as one
    ``snapshot`` envelope followed by patches. (Tag 46 is kept for groups.)"""

    node: NodeId
    joined: dict[str, list[WireRef]]
    left: dict[str, list[WireRef]]
    snapshot: bool = False


# -- cluster-wide events ----------------------------------------------------

#: Topics that cross nodes are strings of at most this many characters (a
#: receiver ignores longer ones rather than failing the frame).
MAX_TOPIC_LENGTH = 255
#: Subscribers one node announces for a topic (a count, bounded like credits).
SubscriberCount = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class Interest(EnvelopeBase, tag=43, frozen=True, array_like=True, gc=False):
    """The sender's local subscribers per topic (0: none any more); with
    ``snapshot`` the counts replace everything previously announced."""

    counts: dict[str, SubscriberCount]
    snapshot: bool = False


class Publish(EnvelopeBase, tag=44, frozen=True, array_like=True, gc=False):
    """One event for the receiver's local subscribers of ``topic`` (one per
    node per publish; the receiver fans it out and never forwards it)."""

    topic: str
    type_name: str
    payload: msgspec.Raw
