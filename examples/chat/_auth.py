"""JWT mode: who a connection is, from an HS256 token issued elsewhere.

The chat never issues tokens over HTTP (a ``GET /token?name=`` endpoint would
let anyone be anyone). Something that knows the user issues them with the
shared secret; for trying it out, ``python -m examples.chat token NAME
--jwt-secret-file F`` prints one. The browser passes it as ``/ws?token=...``
(the page takes it from its address, ``/#token=...``, which is never sent to
the server, and keeps it in localStorage). PyJWT checks the signature, the
algorithm (HS256 only: no ``none``, no key confusion) and ``exp``/``nbf`` when
present; the user is the ``name`` claim, or else ``sub``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt

#: The one algorithm accepted.
ALGORITHM = "HS256"
#: The shortest secret accepted (RFC 7518 §3.2: at least the hash's size).
MIN_SECRET_BYTES = 32


class AuthError(Exception):
    """A connection without a valid token (JWT mode); ``str()`` says why."""


def read_secret(path: Path) -> bytes:
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{path}: a JWT secret needs at least {MIN_SECRET_BYTES} bytes")
    return secret


def issue_token(name: str, secret: bytes, ttl: float = 12 * 3600, now: float | None = None) -> str:
    """A token for ``name``, valid for ``ttl`` seconds."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": name, "name": name, "iat": issued, "exp": issued + int(ttl)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def token_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The ``token`` query parameter of a WebSocket's ASGI scope."""
    query = scope.get("query_string", b"")
    values = parse_qs(query.decode("latin-1")).get("token")
    return values[0] if values else None


def verify_token(token: str | None, secret: bytes) -> str:
    """The user name a valid token carries; ``AuthError`` otherwise."""
    if not token:
        raise AuthError("a token is required (JWT mode): connect to /ws?token=...")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM])
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    name = claims.get("name") or claims.get("sub")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise AuthError("the token names no user (a 'name' or 'sub' claim of 1-64 characters)")
    return name
