"""The server side of a channel method: the handler ``@service`` adds to a
class for ``ChannelCall``s (``_chanrpc`` describes the whole exchange).

The arguments are decoded and the middleware chain run before the opening
is answered, so a refusal reaches the opener before anything ran; then the
method runs with the channel, in the member's own nursery (the runtime runs
channel handlers there). A method that fails sends its failure as the last
item instead of failing the member.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import trio

from .._errors import AskTimeout, CallError, ChannelClosed
from ..actors import Actor
from ..runtime import Channel
from ._chanrpc import ACCEPTED, ChannelCall
from ._context import _current
from ._middleware import run_chain
from ._server import _prepare, failure
from ._state import services_of

#: Seconds a failed method waits for room to send its failure to an opener
#: that does not read; past them the channel is cancelled with its text.
FAILURE_WAIT = 5.0


async def on_channel_call(self: Actor, msg: ChannelCall, channel: Channel[Any, Any]) -> None:
    """The handler of a ``ChannelCall`` (added to every service class)."""
    node = self.ctx.node
    state = services_of(node)
    if not state.actor_started:
        await state.ensure_actor()
    local = msg.caller == node.id
    path = self.ctx.self_ref.path
    try:
        method, args, ctx, chain = _prepare(self, state, msg, False, True)
    except CallError as exc:
        await _end_with(channel, exc, failure(exc, False, local, node.id, path))
        return
    token = _current.set(ctx)
    try:
        if chain:
            refusal: BaseException | None = None
            deadline = math.inf if ctx.deadline is None else ctx.deadline
            try:
                with trio.CancelScope(deadline=deadline) as start:
                    await run_chain(chain, "server", ctx, _nothing)
            except Exception as exc:  # a middleware refused: nothing ran
                refusal = exc
            if start.cancelled_caught:
                refusal = AskTimeout(f"{method.qualname}: the deadline passed before it opened")
            if refusal is not None:
                await _end_with(channel, refusal, failure(refusal, False, local, node.id, path))
                return
        try:
            await channel.send(ACCEPTED)
        except ChannelClosed:
            return  # the opener left or was cancelled meanwhile: nothing ran
        # The deadline bounded the opening; the conversation has none.
        _current.set(msgspec.structs.replace(ctx, deadline=None))
        assert method.channel is not None
        kwargs = dict(zip(method.params, args, strict=True))
        kwargs[method.channel] = (
            channel if method.accepts is None else _Checked(channel, method.accepts)
        )
        try:
            await method.fn(self, **kwargs)
        except Exception as exc:  # it fails that conversation, not the member
            await _end_with(channel, exc, failure(exc, True, local, node.id, path))
    finally:
        _current.reset(token)


async def _nothing() -> None:
    return None


async def _end_with(channel: Channel[Any, Any], exc: BaseException, item: Any) -> None:
    """Send a failure as the channel's last item (the opener raises it),
    unless the opener has left; one that does not read for ``FAILURE_WAIT``
    seconds gets the channel cancelled with the failure's text instead."""
    with trio.move_on_after(FAILURE_WAIT):
        try:
            await channel.send(item)
        except ChannelClosed:
            pass  # the opener is gone: nobody to tell
        return
    channel.cancel(f"{type(exc).__name__}: {exc}")


class _Checked(Channel[Any, Any]):
    """The server's channel of a method whose ``Channel[S, R]`` names what
    it receives: an item of another type ends the channel (the opener hears
    why) and never reaches the method, as for an actor's channel handler."""

    __slots__ = ("_accepts", "_inner")

    def __init__(self, inner: Channel[Any, Any], accepts: tuple[type, ...]) -> None:
        # Not Channel.__init__: every operation goes to ``inner``.
        self._inner = inner
        self._accepts = accepts

    def __repr__(self) -> str:
        return repr(self._inner)

    @property
    def window(self) -> int:
        return self._inner.window

    @property
    def buffered(self) -> int:
        return self._inner.buffered

    async def send(self, value: Any) -> None:
        await self._inner.send(value)

    async def receive(self) -> Any:
        value = await self._inner.receive()
        if not isinstance(value, self._accepts):
            names = " | ".join(tp.__name__ for tp in self._accepts)
            reason = f"the opener sent a {type(value).__name__} on a channel that takes {names}"
            self._inner.cancel(reason)
            raise ChannelClosed(reason)
        return value

    def __aiter__(self) -> _Checked:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        await self._inner.close()

    def cancel(self, reason: str = "cancelled") -> None:
        self._inner.cancel(reason)
