"""Two-way channels across nodes, with credit flow control both ways.

The opener's node sends ``ChannelOpen`` with the credit it grants the
handler (its window); the target's node answers with a ``ChannelCredit``
granting the opener its own window (the opener's, at most
``max_channel_window``), or with a ``ChannelDone`` carrying why it refused.
Each end then sends a ``ChannelItem`` only while it holds a credit and
returns credit as its application takes items (``CreditGranter``: half a
window at a time), so neither end ever holds more than its window of items.

Frames carry ``opener`` (who sent them), so a channel is found in the table
of channels this node opened or in the table of those the peer opened, and
both nodes may use the same ids. Whatever a peer gets wrong with one channel
(an id it reuses, an item it cannot decode or sends beyond its credit) ends
that channel alone; frames for an id that is not open are dropped, since
they may have crossed a ``ChannelDone`` on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from .. import _errors as errors
from ..protocols import (
    ChannelCredit,
    ChannelDone,
    ChannelEnd,
    ChannelItem,
    ChannelOpen,
    CreditGranter,
    CreditWindow,
)
from ..runtime import (
    Channel,
    ChannelRequest,
    ChannelSide,
    current_sender,
    open_channel_side,
)
from ._traced import traced, traceparent
from ._wire import error_detail, unbox, wire_ref

if TYPE_CHECKING:
    from ..runtime import ActorRef
    from ._peer import Peer


class RemoteLink:
    """How one local side of a channel talks to its other side on ``peer``."""

    __slots__ = ("credit", "granter", "id", "opener", "path", "peer", "side")

    def __init__(
        self, peer: Peer, id: int, opener: bool, side: ChannelSide, credit: int, path: str
    ) -> None:
        self.peer = peer
        self.id = id
        self.opener = opener  # True on the node that opened the channel
        self.side = side
        self.path = path  # this side's actor path, for the errors it sends
        self.credit = CreditWindow(credit)  # items this side may still send
        self.granter = CreditGranter(side.window)  # and what it grants back
        side.link = self

    def table(self) -> dict[int, RemoteLink]:
        channels = self.peer.channels
        return channels.opened if self.opener else channels.accepted

    async def send(self, value: Any) -> None:
        side, peer = self.side, self.peer
        name, payload = peer.remoting.encode(value, what="channel item", peer=peer)
        while True:
            while not self.credit.can_send:
                await side.wait_writable().wait()
                side.check_send()
            try:
                await peer.wait_for_space()
            except errors.NodeDown:
                side.check_send()  # the channel's own error, if it has one by now
                raise
            side.check_send()
            if self.credit.can_send:  # another task may have taken it meanwhile
                break
        self.credit.consume()
        peer.send(ChannelItem(self.id, self.opener, name, payload))

    def taken(self) -> None:
        n = self.granter.on_processed(1)
        if n:
            self.peer.send_quiet(ChannelCredit(self.id, self.opener, n), urgent=True)

    def close(self) -> None:
        self.peer.send_quiet(ChannelEnd(self.id, self.opener))

    def leave(self, cause: BaseException | None) -> None:
        table = self.table()
        if table.get(self.id) is not self:
            return  # the other side left first, or the peer is gone
        del table[self.id]
        self.peer.send_quiet(ChannelDone(self.id, self.opener, self.detail(cause)))

    def detail(self, cause: BaseException | None) -> Any:
        if cause is None:
            return None
        remoting = self.peer.remoting
        return error_detail(
            cause, remoting.node.id, self.path, tracebacks=remoting.config.remote_tracebacks
        )

    # ------------------------------------------------ what the peer sends

    def item(self, value: Any) -> None:
        if self.side.ended:
            raise errors.RemoteProtocolError(f"an item on channel {self.id} after its end")
        self.granter.on_item()  # RemoteProtocolError if the peer overran its credit
        self.side.deliver(value)

    def grant(self, n: int) -> None:
        self.credit.grant(n)
        self.side.writable.set()


class ChannelTable:
    """One peer's channels: those this node opened, those the peer opened."""

    __slots__ = ("accepted", "opened")

    def __init__(self) -> None:
        self.opened: dict[int, RemoteLink] = {}
        self.accepted: dict[int, RemoteLink] = {}

    def of(self, opener: bool, id: int) -> RemoteLink | None:
        """The channel a frame is about; ``opener``: the frame's sender opened it."""
        return (self.accepted if opener else self.opened).get(id)

    def fail_all(self, exc: BaseException) -> None:
        for table in (self.opened, self.accepted):
            links = list(table.values())
            table.clear()
            for link in links:
                link.side.other_left(exc)


# ------------------------------------------------------------- opening


@asynccontextmanager
async def open_remote_channel(
    peer: Peer, ref: ActorRef, msg: Any, window: int
) -> AsyncIterator[Channel[Any, Any]]:
    remoting = peer.remoting
    name, payload = remoting.encode(msg, peer=peer)
    await peer.wait_for_space()
    channel_id = next(peer.ids)
    sender = current_sender()
    side = ChannelSide(window, ref.path)
    # No credit yet: the target's node grants it when it accepts the channel.
    link = RemoteLink(peer, channel_id, True, side, 0, "" if sender is None else sender.path)
    peer.send(
        ChannelOpen(
            channel_id,
            wire_ref(ref),
            name,
            payload,
            window,
            None if sender is None else wire_ref(sender),
            traceparent(remoting),
        )
    )
    peer.channels.opened[channel_id] = link  # (sent: the peer was not down)
    async with open_channel_side(side) as channel:
        yield channel


# ------------------------------------------------- what a peer sends


def _refuse(peer: Peer, env: ChannelOpen, exc: errors.TrouperError) -> None:
    from ._inbound import bad_message

    bad_message(peer, f"channel with {env.target.path}: {exc}")
    remoting = peer.remoting
    detail = error_detail(
        exc, remoting.node.id, env.target.path, tracebacks=remoting.config.remote_tracebacks
    )
    peer.send_quiet(ChannelDone(env.id, False, detail))


def on_channel_open(peer: Peer, env: ChannelOpen) -> None:
    from ._inbound import decode, deliver, forbidden, sender_of, target_of

    accepted = peer.channels.accepted
    config = peer.config
    reused = accepted.pop(env.id, None)
    if reused is not None:
        # Which of the two the peer's later frames mean cannot be told:
        # both end, and the peer's other channels carry on.
        exc: errors.TrouperError = errors.RemoteProtocolError(
            f"channel id {env.id} is already open"
        )
        reused.side.other_left(exc)
        _refuse(peer, env, exc)
        return
    if len(accepted) >= config.max_channels:
        node_id = peer.remoting.node.id
        _refuse(
            peer,
            env,
            errors.MailboxFull(f"node {node_id} has {config.max_channels} channels open for you"),
        )
        return
    cell = target_of(peer, env.target)
    if cell is None:
        _refuse(peer, env, errors.ActorDead(f"{env.target.path} is dead (or never lived here)"))
        return
    try:
        msg = decode(peer, env.type_name, env.payload)
    except errors.UnhandledMessage as exc:
        _refuse(peer, env, exc)
        return
    if (refused := forbidden(cell, msg)) is not None:
        _refuse(peer, env, refused)
        return
    window = min(env.credit, config.max_channel_window)
    opener = f"node {peer.node_id}" if env.sender is None else env.sender.path
    side = ChannelSide(window, opener)
    accepted[env.id] = RemoteLink(peer, env.id, False, side, env.credit, env.target.path)
    peer.send_quiet(ChannelCredit(env.id, False, window), urgent=True)
    request = traced(peer, env, ChannelRequest(side))
    deliver(peer, cell, (msg, sender_of(peer, env.sender), request), None)


def _abort(peer: Peer, link: RemoteLink, exc: errors.TrouperError) -> None:
    """End one channel because of what the peer sent on it: both sides hear why."""
    from ._inbound import bad_message

    bad_message(peer, f"channel {link.id}: {exc}")
    link.side.other_left(exc)
    link.leave(exc)


def on_channel_item(peer: Peer, env: ChannelItem) -> None:
    from ._inbound import decode

    link = peer.channels.of(env.opener, env.id)
    if link is None:
        return  # not open (any more): it may have crossed a ChannelDone
    try:
        link.item(decode(peer, env.type_name, env.payload))
    except (errors.UnhandledMessage, errors.RemoteProtocolError) as exc:
        _abort(peer, link, exc)


def on_channel_credit(peer: Peer, env: ChannelCredit) -> None:
    link = peer.channels.of(env.opener, env.id)
    if link is not None:
        link.grant(env.n)


def on_channel_end(peer: Peer, env: ChannelEnd) -> None:
    link = peer.channels.of(env.opener, env.id)
    if link is not None:
        link.side.end()


def on_channel_done(peer: Peer, env: ChannelDone) -> None:
    channels = peer.channels
    table = channels.accepted if env.opener else channels.opened
    link = table.pop(env.id, None)
    if link is not None:
        link.side.other_left(None if env.error is None else unbox(env.error))


CHANNEL_HANDLERS: dict[type, Callable[[Peer, Any], None]] = {
    ChannelOpen: on_channel_open,
    ChannelItem: on_channel_item,
    ChannelCredit: on_channel_credit,
    ChannelEnd: on_channel_end,
    ChannelDone: on_channel_done,
}
