"""What ``trouper.pools.postgres`` takes, checked where the mistake is made.

``settings()`` validates the URL and the options (at the call, not when the
``async with`` is entered) and builds the ``ResourcePool`` arguments: how a
member (a ``PgConnection``) is opened, closed and health-checked.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from trouper._errors import ConfigurationError
from trouper.stores._errors import StoreError

from ._pg_conn import PgConnection
from ._pg_errors import StoreUnavailable, map_exceptions
from ._policy import PoolPolicy

__all__ = ["Replace", "Settings", "is_broken", "settings"]


class Replace(Exception):
    """Raised inside a checkout to make the pool close a member found broken."""


def is_broken(exc: BaseException) -> bool:
    return isinstance(exc, Replace | StoreUnavailable)


def _describe(url: str) -> str:
    """``postgres host:port/db`` for messages and the pool's name: never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        with map_exceptions("postgres"):
            info = conninfo_to_dict(url)
    except StoreError as exc:
        raise ConfigurationError(f"malformed PostgreSQL URL: {exc.__cause__}") from None
    host, port, db = info.get("host", "localhost"), info.get("port", 5432), info.get("dbname", "")
    if not all(p.strip().isdigit() for p in str(port).split(",")):
        raise ConfigurationError(f"PostgreSQL URL has a bad port {port!r}")
    return f"postgres {host}:{port}/{db}"


_URL_OPTIONS = {"min": int, "max": int, "checkout_timeout": float}


def _url_options(url: str) -> tuple[str, dict[str, Any]]:
    """Take trouper's options (``?min=2&max=20&checkout_timeout=1``) out of a
    URL; libpq gets the rest (it refuses parameters it does not know)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    if not url.startswith(("postgres://", "postgresql://")) or "?" not in url:
        return url, {}
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, Any] = {}
    for key, text in pairs:
        if key in _URL_OPTIONS:
            try:
                options[key] = _URL_OPTIONS[key](text)
            except ValueError:
                kind = _URL_OPTIONS[key].__name__
                raise ConfigurationError(
                    f"PostgreSQL URL option {key}={text!r} is not an {kind}"
                ) from None
    rest = [(k, v) for k, v in pairs if k not in _URL_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(rest))), options


@attrs.frozen
class Settings:
    """A validated pool configuration: the pool's name and ``ResourcePool``'s arguments."""

    where: str
    policy: PoolPolicy
    resource: dict[str, Any]


def settings(
    url: str,
    *,
    min: int | None = None,
    max: int | None = None,
    checkout_timeout: float | None = None,
    leak_after: float | None = None,
    health_every: float | None = 30.0,
    connect_timeout: float = 10.0,
    policy: PoolPolicy | None = None,
) -> Settings:
    """Check everything ``postgres()`` takes, where the mistake is made."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a PostgreSQL URL must be a str, not {type(url).__name__}")
    url, options = _url_options(url)
    if policy is None:
        min = options.get("min", 1) if min is None else min
        max = options.get("max", 10) if max is None else max
        policy = PoolPolicy(min=min, max=max)
    elif min is not None or max is not None:
        raise ConfigurationError("give either policy= or min=/max=, not both")
    if checkout_timeout is None:
        checkout_timeout = options.get("checkout_timeout", 5.0)
    timeouts = {"checkout_timeout": checkout_timeout, "connect_timeout": connect_timeout}
    for name, value in timeouts.items():
        if not value > 0:  # also refuses NaN
            raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
    for name, value in (("leak_after", leak_after), ("health_every", health_every)):
        if value is not None and not value > 0:
            raise ConfigurationError(f"{name} must be > 0 seconds or None, got {value!r}")
    where = _describe(url)

    async def open_member() -> PgConnection:
        return await PgConnection.open(url, connect_timeout=connect_timeout, where=where)

    async def close_member(conn: PgConnection) -> None:
        await conn.close()

    async def check_member(conn: PgConnection) -> None:
        if conn.broken or conn.closed:
            raise StoreUnavailable(f"{where}: connection is no longer usable")
        with trio.fail_after(connect_timeout):
            await conn.fetchval("SELECT 1", ())

    resource = {
        "open": open_member,
        "close": close_member,
        "check": check_member,
        "is_broken": is_broken,
        "policy": policy,
        "checkout_timeout": checkout_timeout,
        "leak_after": leak_after,
        "health_every": health_every,
    }
    return Settings(where, policy, resource)
