"""Service methods that take a two-way channel: ``async with proxy.m(...) as ch``.

The proxy picks a member as for a call and opens a runtime channel
(``ref.channel``) with a ``ChannelCall``: the method's arguments as msgpack,
which only the server's typed decoder for that method turns into values. The
server checks them and runs its middleware chain, and only then answers the
opening with ``ChannelAccepted`` and calls the method with the channel; a
refusal is answered instead, and the opener raises it (nothing ran). The
proxy's timeout bounds the opening (reaching the member, decoding,
middleware), never the conversation. A method that fails sends its failure
as the channel's last item, which the opener's iteration raises, so that
the member does not crash over one conversation. Once open, a channel is
never retried: a conversation cannot be replayed.
"""

from __future__ import annotations

import math
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec
import trio

from .._errors import (
    ActorDead,
    AskTimeout,
    ChannelClosed,
    ConfigurationError,
    TrouperError,
)
from ..protocols import default_registry
from ..runtime import ActorRef, Channel, current_sender
from ._context import check_metadata
from ._messages import LocalFailure, RpcFailure
from ._middleware import ClientCall, run_chain
from ._proxy import _counts_against
from ._rpc import Method
from ._state import services_of
from ._stream import unbox

if TYPE_CHECKING:
    from ._proxy import ServiceProxy

S = TypeVar("S")
R = TypeVar("R")

#: Each direction's window of a service channel unless ``.window(n)`` says
#: otherwise (as ``ref.channel``'s default).
WINDOW = 16


class ChannelCall(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The opening message of a channel method (``ref.channel`` of it).
    ``timeout`` bounds the opening only; ``caller_ref`` is the opening actor
    (the method runs in a task of its own, where no sender is current)."""

    method: str
    args: bytes
    caller: str
    timeout: float | None = None
    metadata: dict[str, str] | None = None
    caller_ref: ActorRef | None = None


class ChannelAccepted(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """The server's first item on a channel method's channel: the arguments
    fit and the middleware let it through; the method runs now."""


ACCEPTED = ChannelAccepted()
for _tp in (ChannelCall, ChannelAccepted):
    default_registry.register(_tp, f"trouper.services:{_tp.__name__}")


# ------------------------------------------------------------------ client


class ChannelCaller:
    """``proxy.m`` of a channel method: calling it checks and encodes the
    arguments (``InvalidArgument`` at once, before anything is sent)."""

    __slots__ = ("method", "proxy")

    def __init__(self, proxy: ServiceProxy, method: Method) -> None:
        self.proxy = proxy
        self.method = method

    def __call__(self, *args: Any, **kwargs: Any) -> ChannelOpening[Any, Any]:
        method, proxy = self.method, self.proxy
        payload = method.pack(args, kwargs)
        key = None
        if proxy._hash is not None:
            named = dict(zip(method.params, args, strict=False))
            key = proxy._hash.key_of({**method.defaults, **named, **kwargs})
        return ChannelOpening(proxy, method, payload, key)


class ChannelOpening(Generic[S, R]):
    """``async with proxy.m(...) as channel``: opens the conversation (once)
    with one member; leaving the block leaves the channel. For a method that
    takes ``Channel[Out, In]``, the opener's channel is a
    ``ServiceChannel[In, Out]``: it sends what the method receives."""

    __slots__ = ("_entered", "_key", "_method", "_payload", "_proxy", "_stack", "_window")

    def __init__(self, proxy: ServiceProxy, method: Method, payload: bytes, key: object) -> None:
        self._proxy = proxy
        self._method = method
        self._payload = payload
        self._key = key
        self._stack: AsyncExitStack | None = None
        self._entered = False
        self._window = WINDOW

    def window(self, n: int) -> ChannelOpening[S, R]:
        """Open with a window of ``n`` items each way instead of 16 (across
        nodes the method's side takes at most the member node's
        ``max_channel_window``): ``async with proxy.m(...).window(64) as ch``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"a channel window must be an int >= 1, not {n!r}")
        self._window = n
        return self

    async def __aenter__(self) -> ServiceChannel[S, R]:
        if self._entered:
            raise ConfigurationError("a channel call can be opened once")
        self._entered = True
        stack = self._stack = AsyncExitStack()
        try:
            return await self._open(stack)
        except BaseException:
            self._stack = None
            await stack.__aexit__(*sys.exc_info())  # the member hears why
            raise

    async def __aexit__(self, *exc: Any) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(*exc)

    async def _open(self, stack: AsyncExitStack) -> ServiceChannel[S, R]:
        proxy = self._proxy
        timeout = proxy._timeout
        deadline = math.inf if timeout is None else trio.current_time() + timeout
        chain = proxy._chain
        if not chain:
            return await self._attempts(stack, deadline, proxy._metadata)
        call = ClientCall(proxy._group, self._method.name, dict(proxy._metadata or {}), deadline)

        async def proceed() -> ServiceChannel[S, R]:
            metadata = check_metadata(call.metadata) if call.metadata else None
            return await self._attempts(stack, deadline, metadata)

        opened: ServiceChannel[S, R] = await run_chain(chain, "client", call, proceed)
        return opened

    async def _attempts(
        self, stack: AsyncExitStack, deadline: float, metadata: dict[str, str] | None
    ) -> ServiceChannel[S, R]:
        """Open with one member, or with another after a retryable failure
        (the proxy's ``retry``, within its budget and the deadline). Whatever
        failed, the method did not run: it starts only once the opening is
        answered, so even a non-idempotent method may go elsewhere."""
        proxy = self._proxy
        retry = proxy._retry
        rng = proxy._node.kernel.rng
        now = trio.current_time()
        budget = None
        if retry is not None and retry.attempts > 1:
            budget = services_of(proxy._node).budget(proxy._group, retry.make_budget)
            budget.record_call(now)
        avoid: list[ActorRef] = []
        attempt = 0
        while True:
            ref = proxy._choose(avoid, self._key, now)
            try:
                return await self._attempt(stack, ref, deadline, metadata)
            except TrouperError as exc:
                now = trio.current_time()
                if _counts_against(exc):
                    breaker = proxy._breaker_of(ref)
                    breaker.failure(now)
                    services_of(proxy._node).unsettled.add(breaker)
                attempt += 1
                if retry is None or budget is None or attempt >= retry.attempts:
                    raise
                if not (isinstance(exc, ActorDead) or exc.is_retryable):
                    raise
                if not budget.try_spend(now):
                    raise
                avoid.append(ref)
                delay = retry.delay(attempt - 1, rng)
                if exc.retry_delay and len(proxy._current_members()) <= len(avoid):
                    delay = max(delay, exc.retry_delay)  # no other member: heed its delay
                if now + delay >= deadline:
                    raise
                await trio.sleep(delay)
                now = trio.current_time()

    async def _attempt(
        self,
        stack: AsyncExitStack,
        ref: ActorRef,
        deadline: float,
        metadata: dict[str, str] | None,
    ) -> ServiceChannel[S, R]:
        proxy, method = self._proxy, self._method
        now = trio.current_time()
        breaker = proxy._breaker_of(ref)
        remaining = None if deadline == math.inf else deadline - now
        what = f"{proxy._group}.{method.name}"
        if remaining is not None and remaining <= 0:
            raise AskTimeout(f"{what}: no time left to open the channel")
        msg = ChannelCall(
            method.name, self._payload, proxy._node.id, remaining, metadata, current_sender()
        )
        # This attempt's channel and place in the balancer's count: kept by
        # ``stack`` if it opens, let go (the member hearing why) if not.
        mine = AsyncExitStack()
        proxy._balancer.started(ref)
        mine.callback(proxy._balancer.finished, ref)
        error: BaseException | None = None
        first: Any = None
        try:
            with trio.move_on_at(deadline) as scope:
                try:
                    channel = await mine.enter_async_context(ref.channel(msg, window=self._window))
                    first = await channel.receive()
                except ChannelClosed as exc:  # refused before it ran: dead member, node down...
                    cause = exc.__cause__
                    error = cause if isinstance(cause, TrouperError) else exc
                except trio.EndOfChannel:
                    error = ChannelClosed(f"{ref.path} ended the channel before it opened")
                except TrouperError as exc:
                    error = exc
            if scope.cancelled_caught:
                error = AskTimeout(f"{what}: the channel did not open within {proxy._timeout}s")
            elif error is None:
                kind = type(first)
                if kind is LocalFailure or kind is RpcFailure:
                    error = first.exc if kind is LocalFailure else unbox(first)
                elif kind is not ChannelAccepted:
                    error = ChannelClosed(f"{ref.path} opened the channel with a {kind.__name__}")
            if error is not None:
                raise error
        except BaseException:
            await mine.__aexit__(*sys.exc_info())
            raise
        stack.push_async_exit(mine)
        now = trio.current_time()
        unsettled = services_of(proxy._node).unsettled
        if breaker.state != "closed" or breaker in unsettled:
            breaker.success(now)
            unsettled.discard(breaker)
        return ServiceChannel(channel)


class ServiceChannel(Generic[S, R]):
    """The opener's end of a channel method's conversation: ``await
    send(x)``, ``async for y in channel`` (or ``await receive()``). A failure
    of the method is raised by the iteration, after what it sent before."""

    __slots__ = ("_channel",)

    def __init__(self, channel: Channel[Any, Any]) -> None:
        self._channel = channel

    def __repr__(self) -> str:
        return f"<service {self._channel!r}>"

    @property
    def window(self) -> int:
        return self._channel.window

    @property
    def buffered(self) -> int:
        return self._channel.buffered

    async def send(self, value: S) -> None:
        """Send one item; waits for room at the method's side."""
        await self._channel.send(value)

    async def receive(self) -> R:
        """The next item; ``trio.EndOfChannel`` at a clean end, the method's
        failure if it failed, ``ChannelClosed`` if it cancelled or is gone."""
        value: Any = await self._channel.receive()
        kind = type(value)
        if kind is LocalFailure:
            raise value.exc
        if kind is RpcFailure:
            raise unbox(value)
        item: R = value
        return item

    def __aiter__(self) -> ServiceChannel[S, R]:
        return self

    async def __anext__(self) -> R:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        await self._channel.close()

    def cancel(self, reason: str = "cancelled") -> None:
        self._channel.cancel(reason)
