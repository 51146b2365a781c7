"""What a ``redis://`` URL names, for the Redis pool and the Redis store.

``redis://[user[:password]@]host[:port][/db][?option=value...]``: the store
reads ``prefix``; the pool reads the sizes and timeouts (its arguments
override them). Mistakes raise ``ConfigurationError`` naming the problem and
never echoing the password.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from trouper._errors import ConfigurationError

__all__ = ["DEFAULT_PREFIX", "URL_OPTIONS", "RedisSpec", "parse_redis_url", "positive"]

#: Query options a ``redis://`` URL may carry (the store reads ``prefix``).
URL_OPTIONS = ("prefix", "min", "max", "checkout_timeout", "command_timeout")


#: The store's key prefix when the URL gives none.
DEFAULT_PREFIX = "trouper:store:"


@attrs.frozen
class RedisSpec:
    """What a ``redis://`` URL names. ``where`` omits the password (for messages)."""

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    min: int | None = None
    max: int | None = None
    checkout_timeout: float | None = None
    command_timeout: float | None = None

    @property
    def where(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def _int_option(what: str, text: str, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"redis URL {what} {text!r} is not an integer") from None
    if value < lowest:
        raise ConfigurationError(f"redis URL {what} must be >= {lowest}, got {value}")
    return value


def _seconds_option(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"redis URL option {name} {text!r} is not a number") from None
    positive(f"redis URL option {name}", value)
    return value


def parse_redis_url(url: str) -> RedisSpec:
    """``redis://[user[:password]@]host[:port][/db][?prefix=P&min=N&max=N]``.

    Raises ``ConfigurationError`` naming the problem (never echoing the
    password).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a redis URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() != "redis":
        raise ConfigurationError(
            "a redis URL starts with redis:// (TLS, rediss://, is not supported)"
        )
    try:
        host, port = parts.hostname, parts.port or 6379
    except ValueError:
        raise ConfigurationError("redis URL has a bad port") from None
    if not host:
        raise ConfigurationError("redis URL names no host: use redis://host:port/db")
    path = parts.path.strip("/")
    db = _int_option("db (the path)", path, 0) if path else 0
    if parts.fragment:
        raise ConfigurationError("redis URL takes no #fragment")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if name not in URL_OPTIONS:
            known = ", ".join(URL_OPTIONS)
            raise ConfigurationError(f"unknown redis URL option {name!r}; known: {known}")
        options[name] = value
    spec = RedisSpec(
        host=host,
        port=port,
        db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        prefix=options.get("prefix", DEFAULT_PREFIX),
        min=_int_option("option min", options["min"], 0) if "min" in options else None,
        max=_int_option("option max", options["max"], 1) if "max" in options else None,
        checkout_timeout=_seconds_option("checkout_timeout", options.get("checkout_timeout")),
        command_timeout=_seconds_option("command_timeout", options.get("command_timeout")),
    )
    if "\x00" in spec.prefix:
        raise ConfigurationError("redis URL option prefix must not contain NUL characters")
    return spec


def positive(name: str, value: float | None) -> None:
    if value is not None and not 0 < value < math.inf:  # also refuses NaN
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")
