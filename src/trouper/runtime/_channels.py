"""Two-way channels: a conversation between an opener and an actor's handler.

``ref.channel(Open(...))`` puts the opening message in the actor's mailbox
with a ``ChannelRequest`` as its reply slot; a handler declared as
``async def h(self, msg: Open, channel: Channel[Out, In]) -> None`` then runs
in the actor's own nursery (``run_channel``), like a stream's producer, and
both sides hold a ``Channel`` over one ``ChannelSide`` each.

Each side receives into a buffer of at most ``window`` items, and the other
side's sender waits while it is full: locally the buffer *is* the credit
(``LocalLink``); across nodes the remote layer's link waits for credit sent
over the wire. Nothing is ever buffered beyond ``window`` per direction.

How a side ends, and what the other side then sees:
- ``close()``: no more sends; the other side's iteration ends cleanly.
- leaving cleanly (the handler returns, the opener leaves its ``async
  with``): the other side's iteration ends after what is buffered, and its
  ``send`` raises ``ChannelClosed``.
- failing or cancelling (``cancel()``, an exception, the actor stopping):
  the other side's next ``receive`` or ``send`` raises ``ChannelClosed``
  naming the cause.
A handler still running ``LINGER`` seconds after its opener left is
cancelled, so a handler stuck elsewhere cannot hold its task (and, for a
remote opener, one of that peer's ``max_channels``) for ever.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

import trio

from .._errors import ActorDead, ChannelClosed

if TYPE_CHECKING:
    from ..actors._actor import Actor, Entry
    from ._cell import Cell

log = logging.getLogger("trouper")

S = TypeVar("S")
R = TypeVar("R")

#: Seconds a handler may go on after its opener left before it is cancelled.
LINGER = 5.0


class ChannelLink(Protocol):
    """How one side's sends reach the other side (locally, or over a peer)."""

    async def send(self, value: Any) -> None:
        """Deliver one item once the other side has room (credit)."""

    def taken(self) -> None:
        """This side took one item from its buffer: room for one more."""

    def close(self) -> None:
        """This side will send nothing more."""

    def leave(self, cause: BaseException | None) -> None:
        """This side is done with the channel (``cause``: why, if it failed)."""


class ChannelSide:
    """One end's state: what it received, and whether either side ended."""

    __slots__ = (
        "accepts",
        "buffer",
        "closed",
        "ended",
        "failure",
        "gone",
        "left",
        "link",
        "other",
        "readable",
        "scope",
        "window",
        "writable",
    )

    def __init__(self, window: int, other: str) -> None:
        self.window = window
        self.other = other  # who is at the other end, for error messages
        self.buffer: deque[Any] = deque()
        self.link: ChannelLink | None = None
        self.closed = False  # this side sends no more
        self.left = False  # this side is done with the channel
        self.ended = False  # the other side sends no more
        self.gone = False  # the other side is done with the channel
        self.failure: ChannelClosed | None = None
        self.readable = trio.Event()
        self.writable = trio.Event()
        self.scope: trio.CancelScope | None = None  # a handler's, to bound its linger
        self.accepts: tuple[type, ...] | None = None  # what a handler declared it takes

    # ---------------------------------------------- what the other side does

    def deliver(self, value: Any) -> None:
        self.buffer.append(value)
        self.readable.set()

    def end(self) -> None:
        self.ended = True
        self.readable.set()

    def other_left(self, cause: BaseException | None) -> None:
        """The other side is done: cleanly (``cause`` None) or not."""
        if self.gone:
            return
        self.gone = True
        self.ended = True
        if cause is not None and self.failure is None and not self.left:
            exc = ChannelClosed(
                f"the channel with {self.other} ended: {type(cause).__name__}: {cause}"
            )
            exc.__cause__ = cause
            self.failure = exc
        self.readable.set()
        self.writable.set()
        if self.scope is not None:
            self.scope.deadline = min(self.scope.deadline, trio.current_time() + LINGER)

    # ---------------------------------------------------- what this side does

    def check_send(self) -> None:
        if self.failure is not None:
            raise self.failure
        if self.closed or self.left:
            raise ChannelClosed(f"this side of the channel with {self.other} is closed")
        if self.gone:
            raise ChannelClosed(f"{self.other} has left the channel: nothing more can be sent")

    async def send(self, value: Any) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self.check_send()
        assert self.link is not None
        await self.link.send(value)

    async def receive(self) -> Any:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self.failure is not None:
                raise self.failure
            if self.buffer:
                value = self.buffer.popleft()
                if self.accepts is not None and not isinstance(value, self.accepts):
                    self.refuse(value)
                if not self.left and not self.gone:
                    assert self.link is not None
                    self.link.taken()
                return value
            if self.ended:
                raise trio.EndOfChannel
            if self.left:
                raise ChannelClosed(f"this side has left the channel with {self.other}")
            if self.readable.is_set():  # (a fresh one is shared by every reader)
                self.readable = trio.Event()
            await self.readable.wait()

    def refuse(self, value: Any) -> NoReturn:
        """An item of a type the handler does not take: the channel ends (the
        sender hears why) and the handler never sees it."""
        names = " | ".join(tp.__name__ for tp in self.accepts or ())
        exc = ChannelClosed(
            f"{self.other} sent a {type(value).__name__} on a channel that takes {names}"
        )
        self.leave(exc)
        self.failure = exc
        raise exc

    def close(self) -> None:
        if self.closed or self.left:
            return
        self.closed = True
        if not self.gone:
            assert self.link is not None
            self.link.close()

    def leave(self, cause: BaseException | None) -> None:
        if self.left:
            return
        self.left = True
        self.closed = True
        self.buffer.clear()
        self.readable.set()
        self.writable.set()
        if not self.gone:
            assert self.link is not None
            self.link.leave(cause)

    def wait_writable(self) -> trio.Event:
        """The event a sender waiting for room (credit) sleeps on; one for all
        the senders that wait at once."""
        if self.writable.is_set():
            self.writable = trio.Event()
        return self.writable


class Channel(Generic[S, R]):
    """One end of a two-way channel: ``send`` items of type ``S`` and iterate
    (or ``receive``) items of type ``R``.

    ``send`` waits while the other side's window is full. Iteration ends
    cleanly when the other side closes or leaves; a cancelled or failed
    other side makes ``receive`` and ``send`` raise ``ChannelClosed``.
    """

    __slots__ = ("_side",)

    def __init__(self, side: ChannelSide) -> None:
        self._side = side

    def __repr__(self) -> str:
        side = self._side
        return f"<Channel with {side.other} window={side.window} buffered={len(side.buffer)}>"

    @property
    def window(self) -> int:
        """The most items this side holds received and not yet taken."""
        return self._side.window

    @property
    def buffered(self) -> int:
        """Items received and not yet taken."""
        return len(self._side.buffer)

    async def send(self, value: S) -> None:
        """Send one item; waits for room at the other side. ``ChannelClosed``
        once either side closed, left or failed."""
        await self._side.send(value)

    async def receive(self) -> R:
        """The next item; ``trio.EndOfChannel`` at a clean end,
        ``ChannelClosed`` if the other side failed or cancelled."""
        value: R = await self._side.receive()
        return value

    def __aiter__(self) -> Channel[S, R]:
        return self

    async def __anext__(self) -> R:
        try:
            value: R = await self._side.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        return value

    async def close(self) -> None:
        """Send nothing more: the other side's iteration ends cleanly. This
        side may still receive."""
        self._side.close()
        await trio.lowlevel.checkpoint()

    def cancel(self, reason: str = "cancelled") -> None:
        """Abandon the channel: the other side sees ``ChannelClosed(reason)``."""
        self._side.leave(ChannelClosed(reason))


# ---------------------------------------------------------------- local pairs


class LocalLink:
    """Sends from ``me`` straight into ``peer``'s buffer (the buffer is the credit)."""

    __slots__ = ("me", "peer")

    def __init__(self, me: ChannelSide, peer: ChannelSide) -> None:
        self.me = me
        self.peer = peer

    async def send(self, value: Any) -> None:
        me, peer = self.me, self.peer
        while len(peer.buffer) >= peer.window:
            await me.wait_writable().wait()
            me.check_send()
        peer.deliver(value)

    def taken(self) -> None:
        self.peer.writable.set()

    def close(self) -> None:
        self.peer.end()

    def leave(self, cause: BaseException | None) -> None:
        self.peer.other_left(cause)


def local_pair(window: int, target: str, opener: str) -> tuple[ChannelSide, ChannelSide]:
    """The opener's side and the handler's side of a channel within a node."""
    mine = ChannelSide(window, target)
    theirs = ChannelSide(window, opener)
    mine.link = LocalLink(mine, theirs)
    theirs.link = LocalLink(theirs, mine)
    return mine, theirs


class ChannelRequest:
    """The reply slot of a channel's opening message: holds the handler's
    side until the handler runs. ``fail`` (the actor is dead, or has no such
    handler) ends the channel with that cause."""

    __slots__ = ("side", "trace")
    trace: Any  # the opener's tracing context, set only while tracing is on

    def __init__(self, side: ChannelSide) -> None:
        self.side = side

    def set(self, value: Any) -> None:
        self.side.leave(None)

    def fail(self, exc: BaseException) -> None:
        self.side.leave(exc)


def why_left(exc: BaseException) -> BaseException:
    """What the other side hears when this side leaves by an exception."""
    if isinstance(exc, trio.Cancelled):
        return ChannelClosed("the other side was cancelled")
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
        return ChannelClosed(f"the other side was interrupted ({type(exc).__name__})")
    return exc


@asynccontextmanager
async def opened(side: ChannelSide) -> AsyncIterator[Channel[Any, Any]]:
    """The opener's ``async with``: leaving it leaves the channel (cleanly,
    or with what made it leave)."""
    try:
        yield Channel(side)
    except BaseException as exc:
        side.leave(why_left(exc))
        raise
    side.leave(None)


# ------------------------------------------------------------------ handlers


async def run_channel(
    cell: Cell, entry: Entry, actor: Actor | None, msg: Any, request: ChannelRequest
) -> None:
    """Run one channel handler, in the actor's own nursery (supervised)."""
    from . import _lifecycle as life

    side = request.side
    side.accepts = entry.accepts
    with trio.CancelScope() as scope:
        side.scope = scope
        if side.gone:
            scope.deadline = trio.current_time() + LINGER
        try:
            await entry.fn(actor, msg, Channel(side))
        except BaseException as exc:
            if not life.is_failure(exc):
                # The actor is stopping or restarting (or the opener left
                # long ago and the linger ran out): the opener hears so now.
                side.leave(ActorDead(f"{cell.ref.path} stopped during the channel"))
                raise
            if isinstance(exc, ChannelClosed) and (side.gone or side.left):
                # The opener ended it (or the handler used the channel after
                # leaving it): the end of a conversation, not a failure.
                log.debug("a channel of %s ended: %r", cell.ref.path, exc)
                side.leave(None)
                return
            life.dead_letter(cell, msg, None, f"failed: {exc!r}")
            if cell._actor is actor:
                life.crash_if_running(cell, exc)
            side.leave(exc)
            return
        side.leave(None)


def channel_handled(cell: Cell, entry: Entry, msg: Any, sender: Any, reply: Any) -> None:
    """A message for a channel handler, or a channel opened on another kind
    of handler: start the handler, or say what is wrong."""
    from .._errors import UnhandledMessage
    from . import _lifecycle as life

    if entry.is_channel and type(reply) is ChannelRequest:
        cell.start_soon(run_channel, cell, entry, cell._actor, msg, reply)
    elif entry.is_channel and reply is None:
        life.dead_letter(cell, msg, sender, "channel handler told: use ref.channel()")
    elif entry.is_channel:
        reply.fail(
            UnhandledMessage(
                f"{cell.ref.path}.{entry.name} is a channel handler: use ref.channel()"
            )
        )
    else:
        kind = "a stream handler: use ref.stream()" if entry.is_stream else "not a channel handler"
        reply.fail(UnhandledMessage(f"{cell.ref.path}.{entry.name} is {kind}"))
