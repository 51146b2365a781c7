"""``ActorRef`` and the reply slots that asks and streams wait on.

A ref is an immutable address (node id, path, uid). A local ref caches its
cell, so the hot path (``tell`` → mailbox) is a few attribute reads, a tuple
and a deque append: no codec, no lock, no scheduler checkpoint unless the
caller has been cancelled or the mailbox is full.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import outcome
import trio

from .._errors import ActorDead, AskTimeout, ConfigurationError, MailboxFull
from ._channels import Channel, ChannelRequest, local_pair, opened
from ._states import DEAD
from ._streams import StreamReader, StreamRequest

if TYPE_CHECKING:
    from ._cell import Cell
    from ._spi import RemoteLayer

#: The cell whose task (or background task) is running, if any: the implicit
#: sender of every tell and ask, as in Akka.
current_cell: ContextVar[Cell | None] = ContextVar("trouper_current_cell", default=None)
#: The id of the node whose ``open_node`` body (or task started from it) runs:
#: what a log record outside any cell names as its node.
current_node_id: ContextVar[str | None] = ContextVar("trouper_current_node", default=None)


def current_sender() -> ActorRef | None:
    cell = current_cell.get()
    return None if cell is None else cell.ref


#: The reply slot of a watch notice: ``Terminated`` is delivered through the
#: mailbox (after everything the dead actor sent before dying) but bypasses
#: its bound, and is dropped if the watcher unwatched in the meantime.
WATCH_NOTICE: Any = object()

PENDING: Any = object()
_ABANDONED: Any = object()


class Reply:
    """Where a handler's result goes for an ``ask``.

    The asker may not be parked yet when the result arrives (it can still be
    waking up from waiting for mailbox space, which the cell hands over while
    the asker sleeps), so the outcome is stored and the task is rescheduled
    only if it is actually parked.
    """

    __slots__ = ("outcome", "parked", "queue", "task", "trace")

    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.outcome: Any = PENDING
        self.parked = False
        self.queue: Any = None  # its timeout's queue in the timer service
        self.trace: Any = None  # the asker's tracing context, when tracing is on

    def set(self, value: Any) -> None:
        self._finish(outcome.Value(value))

    def fail(self, exc: BaseException) -> None:
        self._finish(outcome.Error(exc))

    def _finish(self, result: outcome.Outcome[Any]) -> None:
        if self.outcome is not PENDING:
            return
        self.outcome = result
        queue = self.queue
        if queue is not None:
            self.queue = None
            queue.settled()
        if self.parked:
            self.parked = False
            trio.lowlevel.reschedule(self.task, result)

    async def wait(self) -> Any:
        if self.outcome is PENDING:
            self.parked = True
            return await trio.lowlevel.wait_task_rescheduled(self._abort)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return self.outcome.unwrap()

    def _abort(self, raise_cancel: Any) -> trio.lowlevel.Abort:
        self.parked = False
        self.outcome = _ABANDONED
        queue = self.queue
        if queue is not None:
            self.queue = None
            queue.settled()
        return trio.lowlevel.Abort.SUCCEEDED


class TraceNote:
    """The reply slot of a ``tell`` while tracing is on: it carries the
    sender's tracing context to the handler's span and answers nothing."""

    __slots__ = ("trace",)

    def __init__(self, context: Any) -> None:
        self.trace = context

    def set(self, value: Any) -> None:
        pass

    def fail(self, exc: BaseException) -> None:
        pass


class ActorRef:
    """The address of an actor: hashable, comparable, and the same on every node."""

    __slots__ = ("_cell", "_hash", "_via", "_wire", "node_id", "path", "uid")

    def __init__(
        self,
        node_id: str,
        path: str,
        uid: int,
        cell: Cell | None = None,
        via: RemoteLayer | None = None,
    ) -> None:
        self.node_id = node_id
        self.path = path
        self.uid = uid
        self._cell = cell  # set for a local actor: the hot path goes straight to it
        self._via = via  # set for a remote actor: the node whose links reach it
        self._wire: Any = None  # its WireRef, made once when it first crosses the wire
        self._hash = hash((node_id, path, uid))

    def __repr__(self) -> str:
        return f"<ActorRef {self.path}#{self.uid} @{self.node_id}>"

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActorRef):
            return NotImplemented
        return self.uid == other.uid and self.path == other.path and self.node_id == other.node_id

    def __lt__(self, other: ActorRef) -> bool:
        return (self.node_id, self.path, self.uid) < (other.node_id, other.path, other.uid)

    def _local(self) -> Cell:
        cell = self._cell
        if cell is None:
            raise ConfigurationError(f"{self!r} is not an actor of this node")
        return cell

    def _remote(self) -> RemoteLayer:
        via = self._via
        if via is None:
            raise ConfigurationError(
                f"{self!r} cannot be reached: refs to other nodes come from a node "
                "with remoting (lookup, spawn(on=...), or a message)"
            )
        return via

    async def tell(self, msg: Any) -> None:
        """Deliver ``msg``; waits while the mailbox is full (backpressure)."""
        cell = self._cell
        if cell is None:
            via = self._remote()
            if via.tracing is None:
                await via.tell(self, msg)
                return
            with via.tracing.send(self.path, self.node_id, type(msg).__name__):
                await via.tell(self, msg)
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        tracing = cell.node.kernel.tracing
        note = None if tracing is None else TraceNote(tracing.context())
        mailbox = cell._mailbox
        if mailbox is not None and (len(mailbox) >= cell._mailbox_size or cell._waiters):
            await _put(cell, (msg, current_sender(), note))
        else:
            cell._enqueue((msg, current_sender(), note))

    def tell_nowait(self, msg: Any) -> None:
        """Deliver ``msg`` now, or raise ``MailboxFull``."""
        cell = self._cell
        if cell is None:
            via = self._remote()
            if via.tracing is None:
                via.tell_nowait(self, msg)
                return
            with via.tracing.send(self.path, self.node_id, type(msg).__name__):
                via.tell_nowait(self, msg)
            return
        mailbox = cell._mailbox
        full = mailbox is not None and (len(mailbox) >= cell._mailbox_size or cell._waiters)
        if full and cell._state != DEAD:  # a dead actor takes anything, into dead letters
            raise MailboxFull(f"{self.path}: mailbox full ({cell._mailbox_size})")
        tracing = cell.node.kernel.tracing
        note = None if tracing is None else TraceNote(tracing.context())
        cell._enqueue((msg, current_sender(), note))

    async def ask(self, msg: Any, timeout: float | None = 5.0) -> Any:
        """Send ``msg`` and return the handler's result; raises ``AskTimeout``
        after ``timeout`` seconds, ``ActorDead`` at once for a dead actor, and
        the handler's own exception if it failed.

        ``timeout=0`` (or less) leaves no time for an answer: it raises
        ``AskTimeout`` at once, every time, and the message is not sent.
        """
        if timeout is not None and not timeout > 0:
            if timeout != timeout:
                raise ConfigurationError("ask timeout is nan: give seconds, or None to wait")
            await trio.lowlevel.checkpoint()
            raise AskTimeout(self._timeout_text(msg, timeout))
        cell = self._cell
        if cell is None:
            via = self._remote()
            if via.tracing is None:
                return await via.ask(self, msg, timeout)
            with via.tracing.ask(self.path, self.node_id, msg):
                return await via.ask(self, msg, timeout)
        tracing = cell.node.kernel.tracing
        if tracing is not None:
            with tracing.ask(self.path, self.node_id, msg):
                return await self._ask_local(cell, msg, timeout, tracing.context())
        return await self._ask_local(cell, msg, timeout, None)

    async def _ask_local(self, cell: Cell, msg: Any, timeout: float | None, trace: Any) -> Any:
        if cell._state == DEAD:
            await trio.lowlevel.checkpoint()
            raise ActorDead(f"{self.path} is dead")
        sender = current_cell.get()
        if sender is cell:
            raise ConfigurationError(f"{self.path} asked itself: that would wait forever")
        reply = Reply(trio.lowlevel.current_task())
        reply.trace = trace
        item = (msg, None if sender is None else sender.ref, reply)
        mailbox = cell._mailbox
        if mailbox is not None and (len(mailbox) >= cell._mailbox_size or cell._waiters):
            # Slow path: waiting for mailbox space counts against the timeout.
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await cell._wait_for_space(item)
                return await reply.wait()
            cell.node.kernel.timers.ask_timeouts += 1
            raise AskTimeout(self._timeout_text(msg, timeout))
        await trio.lowlevel.checkpoint_if_cancelled()
        if timeout is not None:
            cell.node.kernel.timers.ask_timeout(timeout, reply, self, msg)
        cell._enqueue(item)
        return await reply.wait()

    def _timeout_text(self, msg: Any, timeout: float | None) -> str:
        return f"no reply from {self.path} within {timeout}s to {type(msg).__name__}"

    @asynccontextmanager
    async def stream(self, msg: Any, *, window: int = 16) -> AsyncIterator[StreamReader]:
        """Iterate what the actor's async-generator handler yields for ``msg``.

        ``window`` is the consumer's credit: the producer is suspended once that
        many items wait unconsumed. Leaving the block cancels the producer.
        """
        if window < 1:
            raise ConfigurationError("a stream window must be at least 1")
        cell = self._cell
        if cell is None:
            async with self._remote().open_stream(self, msg, window) as reader:
                yield reader
            return
        send, recv = trio.open_memory_channel[Any](window)
        request = StreamRequest(send)
        if cell.node.kernel.tracing is not None:
            request.trace = cell.node.kernel.tracing.context()
        item = (msg, current_sender(), request)
        if cell._state == DEAD:
            await trio.lowlevel.checkpoint()
            raise ActorDead(f"{self.path} is dead")
        await _put(cell, item)
        try:
            yield StreamReader(recv, self)
        finally:
            recv.close()
            request.consumer_left()

    @asynccontextmanager
    async def channel(self, msg: Any, *, window: int = 16) -> AsyncIterator[Channel[Any, Any]]:
        """Open a two-way channel with the actor's channel handler for ``msg``
        (``async def h(self, msg, channel)``): ``send`` to it and iterate what
        it sends back.

        ``window`` bounds each direction: a side holds at most that many items
        received and not yet taken, and the other side's ``send`` waits. Leaving
        the block leaves the channel (the handler's iteration ends; if the block
        raised, the handler's channel raises ``ChannelClosed`` naming why).
        """
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"a channel window must be an int >= 1, not {window!r}")
        cell = self._cell
        if cell is None:
            async with self._remote().open_channel(self, msg, window) as remote:
                yield remote
            return
        if cell._state == DEAD:
            await trio.lowlevel.checkpoint()
            raise ActorDead(f"{self.path} is dead")
        sender = current_sender()
        mine, theirs = local_pair(
            window, self.path, "the opener" if sender is None else sender.path
        )
        request = ChannelRequest(theirs)
        if cell.node.kernel.tracing is not None:
            request.trace = cell.node.kernel.tracing.context()
        await _put(cell, (msg, sender, request))
        async with opened(mine) as local:
            yield local


async def _put(cell: Cell, item: tuple[Any, ActorRef | None, Any]) -> None:
    """Enqueue, waiting for space if the mailbox is full. An actor never waits
    on its own mailbox (it is the only one who could empty it)."""
    if cell._full() and current_cell.get() is not cell:
        await cell._wait_for_space(item)
    else:
        cell._enqueue(item)
