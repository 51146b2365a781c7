"""JWT bearer authentication and the per-client rate limit, as middleware.

``JWTAuth`` verifies ``Authorization: Bearer <token>`` with PyJWT (HS256
with a shared ``secret``, RS256 with a ``public_key``); the key is chosen by
the token's algorithm, and only the configured algorithms are accepted, so
a token cannot pick the key it is checked with. A missing, malformed,
expired or badly signed token is a 401; a route's ``roles`` missing from
the claims is a 403. The verified claims are ``request.state["claims"]``
(``claims_of(request)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import jwt
import trio

from .._errors import ConfigurationError
from ._h1 import Request, Response
from ._middleware import Next
from ._ratelimit import RateLimit, TokenBuckets
from ._statuses import json_error, retry_after

__all__ = ["JWTAuth", "claims_of"]

_HMAC = frozenset({"HS256", "HS384", "HS512"})
_PUBLIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@attrs.frozen
class JWTAuth:
    """How the gateway checks bearer tokens.

    ``required``: whether routes need a token unless they say otherwise
    (``route(..., auth=False)``); routes with ``roles`` always do. Health,
    readiness, static files and ``/openapi.json`` never do. ``roles_claim``
    names the claim listing the subject's roles (a list, or a string of
    space-separated names). ``leeway`` is the clock skew allowed on ``exp``
    and ``nbf``, in seconds.
    """

    secret: str | bytes | None = None
    public_key: str | bytes | None = None
    algorithms: tuple[str, ...] = attrs.field(default=("HS256",), converter=_names)
    audience: str | None = None
    issuer: str | None = None
    leeway: float = 0.0
    roles_claim: str = "roles"
    required: bool = True

    def __attrs_post_init__(self) -> None:
        unknown = set(self.algorithms) - _HMAC - _PUBLIC
        if unknown or not self.algorithms:
            raise ConfigurationError(f"JWTAuth: unsupported algorithms {sorted(unknown)}")
        if set(self.algorithms) & _HMAC and not self.secret:
            raise ConfigurationError("JWTAuth: an HS* algorithm needs a secret")
        if set(self.algorithms) & _PUBLIC and not self.public_key:
            raise ConfigurationError("JWTAuth: an RS*/ES*/PS* algorithm needs a public_key")


def claims_of(request: Request) -> dict[str, Any]:
    """The verified JWT claims of ``request`` (empty without a token)."""
    claims: dict[str, Any] = request.state.get("claims", {})
    return claims


class Authenticate:
    """The middleware of a ``JWTAuth``."""

    def __init__(self, auth: JWTAuth) -> None:
        self.auth = auth
        self.allowed = frozenset(auth.algorithms)
        self.options: Any = {"require": ["exp"]}

    def _key(self, token: str) -> tuple[Any, str]:
        algorithm = jwt.get_unverified_header(token).get("alg")
        if algorithm not in self.allowed:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm!r} is not accepted")
        key = self.auth.secret if algorithm in _HMAC else self.auth.public_key
        return key, algorithm

    def verify(self, token: str) -> dict[str, Any]:
        auth = self.auth
        key, algorithm = self._key(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=auth.audience,
            issuer=auth.issuer,
            leeway=auth.leeway,
            options=self.options,
        )
        return claims

    async def __call__(self, request: Request, call_next: Next) -> Response:
        route = request.state.get("route")
        header = request.header("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return _unauthorized(request, "the Authorization header is not 'Bearer <token>'")
            try:
                request.state["claims"] = self.verify(token.strip())
            except jwt.ExpiredSignatureError:
                return _unauthorized(request, "the bearer token has expired")
            except jwt.PyJWTError as exc:
                return _unauthorized(request, f"the bearer token is invalid: {exc}")
        if route is None:
            return await call_next(request)
        needed = route.auth if route.auth is not None else self.auth.required
        if needed and "claims" not in request.state:
            return _unauthorized(request, "this route needs a bearer token")
        if route.roles:
            granted = _roles(request.state["claims"].get(self.auth.roles_claim))
            missing = [r for r in route.roles if r not in granted]
            if missing:
                return json_error(403, "forbidden", f"the token lacks the roles {missing}", request)
        return await call_next(request)


def _roles(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list | tuple):
        return {str(v) for v in value}
    return set()


def _unauthorized(request: Request, message: str) -> Response:
    return json_error(401, "unauthorized", message, request, [("www-authenticate", "Bearer")])


class Throttle:
    """The middleware of a ``RateLimit``: 429 with ``Retry-After`` over it."""

    def __init__(self, limit: RateLimit) -> None:
        self.buckets = TokenBuckets(limit)

    async def __call__(self, request: Request, call_next: Next) -> Response:
        client = request.client[0] if request.client else "-"
        wait = self.buckets.take(client, trio.current_time())
        if wait > 0:
            message = f"over {self.buckets.limit.rate:g} requests/s; retry in {wait:.2f} s"
            headers = [("retry-after", retry_after(wait))]
            return json_error(429, "rate-limited", message, request, headers)
        return await call_next(request)
