"""``node.proxy(Service)``: the client side of calls.

A proxy is a few references (node, rpc table, options): building it does no
I/O and holds no connection. Each call picks a member of the service's group
(``node.registry.members``) with the balancer, past members whose breaker is
open, asks it a ``Call``, and retries what may be retried within the
per-service budget that every proxy of the node shares with its breakers.
A non-idempotent method runs at most once per logical call: it goes to
another member only when the failure proves it never ran; after a lost
connection it is retried on the same member with the same idempotency key,
which the server deduplicates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from time import perf_counter
from typing import TYPE_CHECKING, Any

import trio

from .. import _errors as errors
from .._errors import (
    ActorDead,
    ActorNotFound,
    AskTimeout,
    CallError,
    CircuitOpen,
    ConfigurationError,
)
from ..runtime._counters import Histogram
from ._balance import ConsistentHash, make_balancer
from ._breaker import Breaker, BreakerChanged, CircuitBreaker
from ._context import check_metadata
from ._messages import Call, LocalFailure, RpcFailure, StreamCall
from ._middleware import ClientCall, run_chain
from ._retry import Retry
from ._rpc import Method, service_info
from ._state import ServicesState, services_of
from ._stream import ServerStream, unbox

if TYPE_CHECKING:
    from ..runtime import ActorRef, Node
    from ..runtime._streams import StreamReader

_log = logging.getLogger("trouper.services")

#: The topic of ``BreakerChanged`` events on the node's event stream.
BREAKER_TOPIC = "trouper.breaker"


def _counts_against(error: BaseException) -> bool:
    """Does this failure count against the member's breaker? Its own
    unavailability does (gone, unreachable, too slow), the caller's mistakes
    and refusals do not."""
    if isinstance(error, CallError):
        return False
    return isinstance(error, ActorDead) or bool(getattr(error, "is_retryable", False))


class ServiceProxy:
    """What ``node.proxy(cls)`` returns (typed as ``cls`` for mypy)."""

    def __init__(
        self,
        node: Node,
        cls: type,
        *,
        timeout: float | None = 5.0,
        retry: Retry | None = None,
        balance: str | ConsistentHash = "round-robin",
        breaker: Breaker | None = None,
        metadata: Mapping[str, str] | None = None,
        middleware: Iterable[Any] = (),
        members: Sequence[ActorRef] | None = None,
    ) -> None:
        info = service_info(cls)
        if timeout is not None and (not timeout > 0 or math.isinf(timeout)):
            raise ConfigurationError(
                f"a proxy timeout is positive seconds or None, not {timeout!r}"
            )
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigurationError(f"retry must be a trouper.Retry, not {retry!r}")
        if breaker is not None and not isinstance(breaker, Breaker):
            raise ConfigurationError(f"breaker must be a trouper.Breaker, not {breaker!r}")
        self._node = node
        self._state: ServicesState = services_of(node)
        self._rpc_metrics = self._state.metrics
        self._info = info
        self._group = info.group
        self._timeout = timeout
        self._retry = retry
        self._breaker = breaker or Breaker()
        self._balancer = make_balancer(balance)
        self._hash = balance if isinstance(balance, ConsistentHash) else None
        self._metadata = check_metadata(metadata)
        # The node's chain is set when it opens, before any proxy exists.
        self._chain = (*self._state.middleware, *middleware)
        #: No chain, no hashing, no tracing: a call goes straight to its attempts.
        self._direct = not self._chain and self._hash is None and node.kernel.tracing is None
        self._members = None if members is None else list(members)
        #: This proxy's view of the node's breakers (found there on a miss).
        self._breakers: dict[ActorRef, CircuitBreaker] = {}

    def __repr__(self) -> str:
        group = self.__dict__.get("_group", "?")
        return f"<proxy of service {group!r}>"

    def __getattr__(self, name: str) -> Any:
        info = self.__dict__.get("_info")
        method = None if info is None else info.methods.get(name)
        if method is None:
            raise AttributeError(f"{self!r} has no rpc method {name!r}")
        caller: Any = _StreamCaller(self, method) if method.is_stream else _Caller(self, method)
        if method.channel is not None:
            from ._chanrpc import ChannelCaller  # (it builds on this module)

            caller = ChannelCaller(self, method)
        self.__dict__[name] = caller  # later lookups find it without __getattr__
        return caller

    # ------------------------------------------------------------ members

    def _current_members(self) -> Sequence[ActorRef]:
        if self._members is not None:
            return self._members
        return self._node.registry.members(self._group)

    def _breaker_of(self, ref: ActorRef) -> CircuitBreaker:
        found = self._breakers.get(ref)
        if found is not None:
            return found
        if len(self._breakers) >= 1024:
            self._breakers.clear()  # members come and go: keep the view small
        found = self._breakers[ref] = self._shared_breaker(ref)
        return found

    def _shared_breaker(self, ref: ActorRef) -> CircuitBreaker:
        def make() -> CircuitBreaker:
            member = f"{ref.path}@{ref.node_id}"
            node = self._node
            group = self._group
            metrics = self._state.metrics

            def changed(old: str, new: str) -> None:
                metrics.breaker_changed(group, new)
                try:
                    node.publish(BREAKER_TOPIC, BreakerChanged(group, member, old, new))
                except errors.TrouperError as exc:  # observability never fails a call
                    _log.warning("breaker event of %s not published: %s", member, exc)

            return CircuitBreaker(self._breaker, changed)

        breaker: CircuitBreaker = self._state.breaker((self._group, self._breaker), ref, make)
        return breaker

    def _choose(self, avoid: list[ActorRef], key: object | None, now: float) -> ActorRef:
        members = self._current_members()
        if not members:
            raise ActorNotFound(f"no member of service {self._group!r}")
        if len(members) == 1 and not avoid:  # nothing to balance: only its breaker decides
            only = members[0]
            breaker = self._breaker_of(only)
            if breaker.state == "closed" or breaker.allow(now):  # closed: allow() is True
                return only
        blocked = set(avoid)
        opened: set[ActorRef] = set()
        local = self._node.id
        for _ in range(len(members)):
            ref = self._balancer.pick(members, key=key, avoid=blocked, local_node=local)
            if ref is None or ref in blocked:
                break  # every member is avoided
            if self._breaker_of(ref).allow(now):
                return ref
            blocked.add(ref)
            opened.add(ref)
        for ref in members:  # a member this call tried already, if it may be tried
            if ref not in opened and self._breaker_of(ref).allow(now):
                return ref
        delay = min(self._breaker_of(ref).time_left(now) for ref in members)
        raise CircuitOpen(
            f"every member of service {self._group!r} has its circuit open", retry_delay=delay
        )

    # -------------------------------------------------------------- calls

    async def _call(self, method: Method, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tracing = self._node.kernel.tracing
        if tracing is None:
            return await self._call_untraced(method, args, kwargs)
        with tracing.rpc_client(self._group, method.name):
            return await self._call_untraced(method, args, kwargs)

    async def _call_untraced(
        self, method: Method, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        payload = method.pack(args, kwargs)
        key = None
        if self._hash is not None:
            named = dict(zip(method.params, args, strict=False))
            key = self._hash.key_of({**method.defaults, **named, **kwargs})
        timeout = self._timeout
        now = trio.current_time()
        deadline = math.inf if timeout is None else now + timeout
        chain = self._chain
        if not chain:
            return await self._attempts(method, payload, key, now, deadline, self._metadata, True)
        call = ClientCall(self._group, method.name, dict(self._metadata or {}), deadline)

        async def send() -> Any:
            metadata = check_metadata(call.metadata) if call.metadata else None
            now = trio.current_time()  # the chain may have taken some of the time
            return await self._attempts(method, payload, key, now, deadline, metadata, False)

        return await run_chain(chain, "client", call, send)

    async def _attempts(
        self,
        method: Method,
        payload: bytes,
        key: object | None,
        now: float,
        deadline: float,
        metadata: dict[str, str] | None,
        exact: bool,
    ) -> Any:
        """Attempts of one logical call; ``exact``: no time has passed since
        ``now`` (no client middleware ran), so the first attempt may ask with
        the proxy's timeout itself."""
        node = self._node
        rng = node.kernel.rng
        retry = self._retry
        budget = None
        if retry is not None and retry.attempts > 1:
            budget = self._state.budget(self._group, retry.make_budget)
            budget.record_call(now)
        # The key lets the server deduplicate a retry on the same member; a
        # call that is never retried needs none (and costs the server nothing).
        idem = 0 if method.idempotent or budget is None else rng.getrandbits(63) | 1
        avoid: list[ActorRef] = []
        same: ActorRef | None = None
        trace = None if node.kernel.tracing is None else node.kernel.tracing.traceparent()
        unsettled = self._state.unsettled
        attempt = 0
        while True:
            ref = same if same is not None else self._choose(avoid, key, now)
            breaker = self._breakers.get(ref) or self._breaker_of(ref)
            if attempt == 0 and exact:
                # The proxy's own timeout, the same float every call: the
                # node's ask timers keep one queue per distinct timeout.
                remaining = self._timeout
            else:
                remaining = None if deadline == math.inf else deadline - now
            if remaining is not None and remaining <= 0:
                raise AskTimeout(f"{self._group}.{method.name}: no time left")
            call_id = rng.getrandbits(63)
            msg = Call(method.name, payload, node.id, call_id, idem, remaining, metadata, trace)
            self._balancer.started(ref)
            try:
                result = await ref.ask(msg, timeout=remaining)
            except trio.Cancelled:
                self._state.cancel_remote(ref, call_id)
                raise
            except errors.TrouperError as exc:
                error: BaseException = exc
                ran: bool | None = (
                    False if isinstance(exc, ActorDead | errors.UnhandledMessage) else None
                )
            else:
                kind = type(result)
                if kind is LocalFailure:
                    error, ran = result.exc, result.ran
                elif kind is RpcFailure:
                    error, ran = unbox(result), result.ran
                else:
                    if breaker.state != "closed" or breaker in unsettled:
                        breaker.success(now)  # resets its count of failures in a row
                        unsettled.discard(breaker)
                    if method.returns is not None and ref.node_id != node.id:
                        return method.typed(result, self._state.resolve)
                    return result
            finally:
                self._balancer.finished(ref)
            now = trio.current_time()
            if _counts_against(error):
                breaker.failure(now)
                unsettled.add(breaker)
            attempt += 1
            if retry is None or attempt >= retry.attempts or budget is None:
                raise error
            if not (isinstance(error, ActorDead) or getattr(error, "is_retryable", False)):
                raise error
            same = None
            if method.idempotent or ran is False:
                avoid.append(ref)
            elif isinstance(error, errors.ConnectionLost):
                same = ref  # it may have run: only its own server can tell (dedup)
            else:
                raise error
            if not budget.try_spend(now):
                raise error
            delay = retry.delay(attempt - 1, rng)
            wait = getattr(error, "retry_delay", None)
            if wait and (same is not None or len(self._current_members()) <= len(avoid)):
                delay = max(delay, wait)  # no other member to try: heed its own delay
            if now + delay >= deadline:
                raise error
            self._state.metrics.retried(self._group)
            await trio.sleep(delay)
            now = trio.current_time()

    def _open_stream(
        self, method: Method, payload: bytes
    ) -> AbstractAsyncContextManager[StreamReader]:
        now = trio.current_time()
        ref = self._choose([], None, now)
        timeout = self._timeout
        node = self._node
        call_id = node.kernel.rng.getrandbits(63)
        msg = StreamCall(method.name, payload, node.id, call_id, timeout, self._metadata)
        return ref.stream(msg)


class _Caller:
    __slots__ = ("histogram", "key", "method", "proxy")

    def __init__(self, proxy: ServiceProxy, method: Method) -> None:
        self.proxy = proxy
        self.method = method
        self.key = (proxy._group, method.name)  # the metrics' labels
        self.histogram: Histogram | None = None  # rpc.client.call.duration, found once

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        proxy = self.proxy
        started = perf_counter()
        try:
            if not proxy._direct:
                return await proxy._call(self.method, args, kwargs)
            method = self.method
            payload = method.pack(args, kwargs)
            now = trio.current_time()
            timeout = proxy._timeout
            deadline = math.inf if timeout is None else now + timeout
            return await proxy._attempts(
                method, payload, None, now, deadline, proxy._metadata, True
            )
        finally:  # rpc.client.call.duration: every call, failed ones too
            histogram = self.histogram
            if histogram is None:
                metrics = proxy._rpc_metrics
                histogram = self.histogram = metrics.histogram(metrics.client, self.key)
            histogram.observe(perf_counter() - started)


class _StreamCaller(_Caller):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return ServerStream(self.proxy, self.method, self.method.pack(args, kwargs))
