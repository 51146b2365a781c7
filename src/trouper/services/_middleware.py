"""Middleware: one chain on the server, one on the client.

A middleware is an object with ``async def server(call, proceed)`` and/or
``async def client(call, proceed)`` (subclass ``trouper.Middleware``, whose
defaults just proceed). ``proceed()`` runs the rest of the chain and returns
its result; raising refuses the call. Server chains: the node's
(``open_node(middleware=[...])``), then the service's
(``@service(..., middleware=[...])``). Client chains: the node's, then the
proxy's (``node.proxy(..., middleware=[...])``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import attrs
import msgspec
import trio

from .._errors import ConfigurationError, RateLimited, Unauthorized
from ..protocols._ratelimit import TokenBucket
from ._context import CallContext

Proceed = Callable[[], Awaitable[Any]]


@attrs.define
class ClientCall:
    """A call about to leave a proxy, as client middleware sees it:
    ``metadata`` may be changed (it is checked against its bounds after the
    chain)."""

    service: str
    method: str
    metadata: dict[str, str]
    deadline: float | None


class Middleware:
    """Base class: override ``server`` and/or ``client``."""

    async def server(self, call: CallContext, proceed: Proceed) -> Any:
        return await proceed()

    async def client(self, call: ClientCall, proceed: Proceed) -> Any:
        return await proceed()


async def run_chain(chain: Sequence[Any], side: str, call: Any, last: Proceed) -> Any:
    """Run ``last`` inside every middleware of ``chain`` (first is outermost)."""
    if not chain:
        return await last()

    def step(i: int) -> Proceed:
        if i == len(chain):
            return last
        hook = getattr(chain[i], side, None)
        if hook is None:
            return step(i + 1)
        rest = step(i + 1)
        return lambda: hook(call, rest)

    return await step(0)()


# -------------------------------------------------------------- logging


class LoggingMiddleware(Middleware):
    """Logs each call with its outcome and duration (``trouper.services``)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("trouper.services")
        self.level = level

    async def server(self, call: CallContext, proceed: Proceed) -> Any:
        return await self._timed("served", f"{call.service}.{call.method}", call.caller, proceed)

    async def client(self, call: ClientCall, proceed: Proceed) -> Any:
        return await self._timed("called", f"{call.service}.{call.method}", "", proceed)

    async def _timed(self, what: str, name: str, caller: str, proceed: Proceed) -> Any:
        start = trio.current_time()
        outcome = "ok"
        try:
            return await proceed()
        except BaseException as exc:
            outcome = type(exc).__name__
            raise
        finally:
            took = (trio.current_time() - start) * 1000
            by = f" for {caller}" if caller else ""
            self.logger.log(self.level, "%s %s%s: %s in %.2f ms", what, name, by, outcome, took)


# ---------------------------------------------------------- token auth

#: The metadata key a bearer token travels under.
AUTHORIZATION = "authorization"


class _Claims(msgspec.Struct, frozen=True):
    sub: str
    roles: list[str]
    exp: float


_claims_decoder = msgspec.json.Decoder(_Claims)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(key, bytes) or len(key) < 16:
        raise ConfigurationError("a token secret is str or bytes of at least 16 bytes")
    return key


def issue_token(
    secret: str | bytes,
    subject: str,
    roles: Collection[str] = (),
    ttl: float = 3600.0,
    *,
    now: float | None = None,
) -> str:
    """A bearer token for ``subject`` with ``roles``, valid ``ttl`` seconds:
    ``claims.signature``, both base64url, the signature an HMAC-SHA256 of the
    claims under ``secret`` (the secret never travels)."""
    if not ttl > 0 or math.isinf(ttl):
        raise ConfigurationError(f"ttl must be positive and finite, not {ttl!r}")
    issued = time.time() if now is None else now
    claims = msgspec.json.encode(_Claims(subject, sorted(roles), issued + ttl))
    mac = hmac.new(_secret(secret), claims, hashlib.sha256).digest()
    return f"{_b64(claims)}.{_b64(mac)}"


def bearer(token: str) -> dict[str, str]:
    """The metadata that carries ``token`` (``node.proxy(..., metadata=bearer(t))``)."""
    return {AUTHORIZATION: f"Bearer {token}"}


class TokenAuth(Middleware):
    """Server side: every call needs a valid, unexpired bearer token whose
    roles include every role the method states (``@rpc(roles=...)``);
    otherwise ``Unauthorized`` and nothing runs. ``clock`` (wall time) is a
    parameter for tests."""

    def __init__(self, secret: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = _secret(secret)
        self._clock = clock

    def verify(self, metadata: Any) -> _Claims:
        header = metadata.get(AUTHORIZATION, "")
        if not header.startswith("Bearer "):
            raise Unauthorized("no bearer token in the call's metadata")
        body, _, sig = header[7:].partition(".")
        try:
            claims_bytes, mac = _unb64(body), _unb64(sig)
        except ValueError:
            raise Unauthorized("the bearer token is malformed") from None
        expected = hmac.new(self._key, claims_bytes, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            raise Unauthorized("the bearer token's signature is invalid")
        try:
            claims = _claims_decoder.decode(claims_bytes)
        except msgspec.DecodeError:
            raise Unauthorized("the bearer token's claims are malformed") from None
        if claims.exp <= self._clock():
            raise Unauthorized(f"the bearer token of {claims.sub!r} has expired")
        return claims

    async def server(self, call: CallContext, proceed: Proceed) -> Any:
        claims = self.verify(call.metadata)
        missing = call.roles - set(claims.roles)
        if missing:
            raise Unauthorized(
                f"{claims.sub!r} lacks role {sorted(missing)[0]!r} for {call.service}.{call.method}"
            )
        return await proceed()


def check_roles(call: CallContext, chain: Sequence[Any]) -> None:
    """A method that states roles is refused unless some middleware of the
    chain checks them (fail closed, not open)."""
    if call.roles and not any(isinstance(m, TokenAuth) for m in chain):
        raise Unauthorized(f"{call.service}.{call.method} needs roles and no TokenAuth checks them")


# ---------------------------------------------------------- rate limit


class RateLimit(Middleware):
    """Server side: a token bucket per caller (its node id and, for a call
    from an actor, that actor's path), ``rate`` calls per second with
    ``burst``; over it, ``RateLimited`` with the delay until a call would
    pass. At most ``max_callers`` buckets are kept (least recently used go).
    Callers are the cluster's own nodes (authenticated by the cookie), so the
    node id a call names is trusted as far as they are."""

    def __init__(self, rate: float, burst: float = 10.0, *, max_callers: int = 10_000) -> None:
        TokenBucket(rate, burst)  # validates
        if max_callers < 1:
            raise ConfigurationError("max_callers must be at least 1")
        self.rate = rate
        self.burst = burst
        self.max_callers = max_callers
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def admit(self, caller: str, now: float) -> None:
        buckets = self._buckets
        bucket = buckets.get(caller)
        if bucket is None:
            bucket = buckets[caller] = TokenBucket(self.rate, self.burst)
            if len(buckets) > self.max_callers:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(caller)
        if not bucket.try_take(now):
            delay = bucket.delay_until_available(now)
            raise RateLimited(f"{caller} is over {self.rate} calls/s", retry_delay=delay)

    async def server(self, call: CallContext, proceed: Proceed) -> Any:
        ref = call.caller_ref
        who = call.caller if ref is None else f"{call.caller}{ref.path}"
        self.admit(who, trio.current_time())
        return await proceed()
