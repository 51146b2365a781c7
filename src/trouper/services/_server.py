"""The server side of a call: the two handlers ``@service`` adds to a class.

A call runs in the member's own task, like any message: decoded with the
method's typed decoder (nothing runs on bad arguments), deduplicated when it
is a retry of a non-idempotent call, passed through the middleware chains,
then run under the call's deadline in a cancel scope its caller can cancel
through this node's services actor. Failures are returned as values
(``RpcFailure``) so the member does not crash over a refused call.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import trio

from .._errors import AskTimeout, CallError, InvalidArgument
from ..actors import Actor
from ._context import CallContext, _current, check_metadata
from ._messages import Call, LocalFailure, RpcFailure, StreamCall
from ._middleware import check_roles, run_chain
from ._rpc import Method, service_info
from ._state import ServicesState, services_of

if TYPE_CHECKING:
    from ._chanrpc import ChannelCall


def failure(exc: BaseException, ran: bool, local: bool, node: str, path: str) -> Any:
    """What a failed call returns: the exception itself to a caller of this
    node, its description to another node."""
    if local:
        return LocalFailure(exc, ran)
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"
    delay = getattr(exc, "retry_delay", None)
    return RpcFailure(
        code=str(getattr(exc, "error_code", "remote")),
        type_name=name,
        message=str(exc)[:4096],
        ran=ran,
        retryable=bool(getattr(exc, "is_retryable", False)),
        retry_delay=delay if isinstance(delay, float | int) and math.isfinite(delay) else None,
        node=node,
        path=path,
    )


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


def _prepare(
    actor: Actor,
    state: ServicesState,
    msg: Call | StreamCall | ChannelCall,
    stream: bool,
    channel: bool = False,
) -> tuple[Method, tuple[Any, ...], CallContext, tuple[Any, ...]]:
    cls = type(actor)
    info = service_info(cls)
    method = info.methods.get(msg.method)
    if method is None:
        raise InvalidArgument(f"{cls.__qualname__} has no rpc method {msg.method!r}")
    if method.is_stream != stream or (method.channel is not None) != channel:
        how = "a server stream: iterate it" if method.is_stream else "not a stream: await it"
        if channel or method.channel is not None:
            how = "a channel method: open it" if method.channel else "not a channel method"
        raise InvalidArgument(f"{method.qualname} is {how}")
    metadata = _NO_METADATA if msg.metadata is None else check_metadata(msg.metadata) or {}
    args = method.unpack(msg.args, state.resolve if method.has_refs else None)
    timeout = msg.timeout
    if timeout is not None and not timeout >= 0:
        raise InvalidArgument(f"a call's timeout is seconds >= 0, not {timeout!r}")
    if timeout is None:
        deadline = None
    else:
        clock = state.clock
        deadline = (trio.current_time() if clock is None else clock.current_time()) + timeout
    ctx = CallContext(
        method.name,
        deadline,
        msg.caller,
        # A channel's method runs in a task of its own: the opener travels in the call.
        getattr(msg, "caller_ref", None) if channel else actor.ctx.sender,
        metadata,
        info.group,
        method.roles,
        method.idempotent,
    )
    node_chain = state.middleware
    chain = info.middleware if not node_chain else (*node_chain, *info.middleware)
    if method.roles:
        check_roles(ctx, chain)
    return method, args, ctx, chain


async def on_call(self: Actor, msg: Call) -> Any:
    """The handler of a ``Call`` (added to every service class)."""
    tracing = self.ctx.node.kernel.tracing
    if tracing is None:
        return await _on_call(self, msg)
    with tracing.rpc_server(type(self).__trouper_group__, msg.method, msg.trace):  # type: ignore[attr-defined]
        return await _on_call(self, msg)


async def _on_call(self: Actor, msg: Call) -> Any:
    node = self.ctx.node
    state = services_of(node)
    if not state.actor_started:
        await state.ensure_actor()
    local = msg.caller == node.id
    try:
        method, args, ctx, chain = _prepare(self, state, msg, False)
    except CallError as exc:
        return failure(exc, False, local, node.id, self.ctx.self_ref.path)
    key = msg.key
    dedup = key != 0 and not method.idempotent
    if dedup:
        earlier = state.recall(msg.caller, key, trio.current_time())
        if earlier is not None:
            return earlier
    if not dedup and not chain and not method.suspends:
        early = state.early_cancels
        if not (early and (msg.caller, msg.id) in early):
            # It runs to its end without a checkpoint: neither its deadline
            # nor a cancel could reach it, so it needs no cancel scope.
            _current.set(ctx)
            try:
                return await method.fn(self, *args)
            except Exception as exc:  # the method's failure goes to its caller
                return _failed(self, exc, True, local)
            finally:
                _current.set(None)  # calls never nest in one task: cheaper than reset
    result, ran = await _run(self, state, method, args, ctx, chain, msg.id, local)
    if dedup and ran:  # a refusal is not remembered: a retry may well pass
        state.remember(msg.caller, key, trio.current_time(), result)
    return result


async def _run(
    actor: Actor,
    state: ServicesState,
    method: Method,
    args: tuple[Any, ...],
    ctx: CallContext,
    chain: tuple[Any, ...],
    id: int,
    local: bool,
) -> tuple[Any, bool]:
    early = state.early_cancels
    if not chain and not method.suspends and not (early and (ctx.caller, id) in early):
        # It runs to its end without a checkpoint: neither its deadline nor
        # a cancel could reach it, so it needs no cancel scope (the hot path).
        _current.set(ctx)
        try:
            return await method.fn(actor, *args), True
        except Exception as exc:  # the method's failure goes to its caller
            return _failed(actor, exc, True, local), True
        finally:
            _current.set(None)
    ran = False

    async def invoke() -> Any:
        nonlocal ran
        ran = True
        return await method.fn(actor, *args)

    scope = trio.CancelScope(deadline=math.inf if ctx.deadline is None else ctx.deadline)
    if not state.start(ctx.caller, id, scope):
        cancelled = AskTimeout(f"{method.qualname}: cancelled by its caller")
        return _failed(actor, cancelled, False, local), False
    _current.set(ctx)
    try:
        with scope:
            if not chain:  # the common case, one coroutine fewer
                ran = True
                return await method.fn(actor, *args), True
            return await run_chain(chain, "server", ctx, invoke), ran
        why = "deadline exceeded" if trio.current_time() >= scope.deadline else "cancelled"
        return _failed(actor, AskTimeout(f"{method.qualname}: {why}"), ran, local), ran
    except Exception as exc:  # the method's own failure goes to its caller, not its supervisor
        return _failed(actor, exc, ran, local), ran
    finally:
        _current.set(None)
        state.finish(ctx.caller, id)


def _failed(actor: Actor, exc: BaseException, ran: bool, local: bool) -> Any:
    return failure(exc, ran, local, actor.ctx.node.id, actor.ctx.self_ref.path)


async def on_stream_call(self: Actor, msg: StreamCall) -> AsyncIterator[Any]:
    """The handler of a ``StreamCall``: a server stream, pumped by the runtime
    (credit flow control end to end, as ``ref.stream``; the consumer leaving
    cancels it). A failure is sent as the stream's last item (the client
    raises it), so that the member does not crash over a refused or failed
    stream. The deadline bounds each step of the method, never a ``yield``:
    a cancel scope must not stay open while the pump hands an item on."""
    node = self.ctx.node
    state = services_of(node)
    if not state.actor_started:
        await state.ensure_actor()
    local = msg.caller == node.id
    path = self.ctx.self_ref.path
    try:
        method, args, ctx, chain = _prepare(self, state, msg, True)
    except CallError as exc:
        yield failure(exc, False, local, node.id, path)
        return
    deadline = math.inf if ctx.deadline is None else ctx.deadline
    late = AskTimeout(f"{method.qualname}: deadline exceeded")
    token = _current.set(ctx)
    gen: Any = None
    try:
        if chain:
            with trio.CancelScope(deadline=deadline) as start:
                await run_chain(chain, "server", ctx, _nothing)
            if start.cancelled_caught:
                yield failure(late, False, local, node.id, path)
                return
        gen = method.fn(self, *args)
        while True:
            if deadline == math.inf:
                try:
                    item = await gen.__anext__()
                except StopAsyncIteration:
                    break
            else:
                with trio.CancelScope(deadline=deadline) as step:
                    try:
                        item = await gen.__anext__()
                    except StopAsyncIteration:
                        break
                # A step that never waits is not cancelled: look at the clock.
                if step.cancelled_caught or trio.current_time() >= deadline:
                    yield failure(late, True, local, node.id, path)
                    return
            yield item
    except Exception as exc:  # the method's own failure goes to its caller, not its supervisor
        yield failure(exc, gen is not None, local, node.id, path)
    finally:
        if gen is not None:
            await gen.aclose()
        _current.reset(token)


async def _nothing() -> None:
    return None
