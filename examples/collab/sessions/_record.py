"""The session record, the bounds a client is held to, and their checks.

Pure code (no I/O): the service checks every argument here before anything
is written, so a bad one is refused with ``trouper.InvalidArgument`` naming
the problem and nothing else is touched.
"""

import math
import re
import secrets
import unicodedata

import attrs
import msgspec

import trouper

#: A generated id: 16 random bytes, URL-safe base64 (22 characters). Ids are
#: never chosen by clients; one given to get/update/delete/heartbeat must
#: have this exact shape, so it is safe in a Redis key and a URL path.
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
#: The longest user name and connection id, in characters (they are parts of
#: index keys, and one store key may hold at most 512 characters).
MAX_NAME_CHARS = 128
#: The TTL range, in seconds: below a second, heartbeats would be a flood;
#: above a day, a forgotten session holds its indexes and locks too long.
MIN_TTL = 1.0
MAX_TTL = 86_400.0
#: ``data`` is a small map: at most this many entries...
MAX_DATA_KEYS = 32
#: ... keys of 1 to this many characters...
MAX_DATA_KEY_CHARS = 64
#: ... and at most this many UTF-8 bytes of keys and values together.
MAX_DATA_BYTES = 4096
#: Live sessions of one user (a client that opens sessions in a loop is
#: refused past this; the others are untouched).
MAX_SESSIONS_PER_USER = 100
#: Session actors one node hosts at once (each holds a timer and a record).
MAX_SESSIONS_PER_NODE = 10_000
#: The largest ``limit`` of one ``list`` call.
MAX_LIST_LIMIT = 1000


@attrs.frozen
class SessionLimits:
    """The bounds one node's service enforces (the module constants by
    default; tests lower some to reach them quickly)."""

    min_ttl: float = MIN_TTL
    max_ttl: float = MAX_TTL
    max_sessions_per_user: int = MAX_SESSIONS_PER_USER
    max_sessions_per_node: int = MAX_SESSIONS_PER_NODE
    max_list_limit: int = MAX_LIST_LIMIT


@trouper.message(name="collab:SessionRecord")
class SessionRecord(msgspec.Struct, frozen=True):
    """One session: ``created`` and ``last_heartbeat`` are wall-clock
    seconds (``time.time()``), ``ttl`` the seconds it lives without a
    heartbeat, ``data`` the client's small str -> str map."""

    id: str
    user: str
    connection: str
    created: float
    last_heartbeat: float
    ttl: float
    data: dict[str, str] = {}


class SessionNotFound(trouper.ActorNotFound):
    """No such live session: unknown, expired or deleted (HTTP 404).

    Unlike its base ``ActorNotFound`` it is not retryable: asking again will
    not make the session exist, and a proxy's circuit breaker counts only
    retryable failures against a member, so a burst of lookups of expired
    sessions must not open the service's breaker. A caller on another node
    gets it as ``trouper.RemoteError`` (``type_name`` ending in
    ``SessionNotFound``): only trouper's own classes cross as themselves.
    """

    error_code = "session-not-found"
    is_retryable = False


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


def check_id(session_id: str) -> str:
    if not ID_PATTERN.fullmatch(session_id):
        shown = session_id[:30] + ("..." if len(session_id) > 30 else "")
        raise trouper.InvalidArgument(
            f"session id {shown!r} is malformed: ids are 22 characters of A-Z a-z 0-9 _ -"
        )
    return session_id


def check_name(what: str, value: str) -> str:
    """A user name or connection id: 1 to ``MAX_NAME_CHARS`` characters,
    no control characters (they end up in keys, logs and URLs)."""
    if not value:
        raise trouper.InvalidArgument(f"{what} is empty")
    if len(value) > MAX_NAME_CHARS:
        raise trouper.InvalidArgument(
            f"{what} has {len(value)} characters, more than the {MAX_NAME_CHARS} allowed"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise trouper.InvalidArgument(f"{what} contains a control character")
    return value


def check_ttl(ttl: float, limits: SessionLimits) -> float:
    if not math.isfinite(ttl) or not limits.min_ttl <= ttl <= limits.max_ttl:
        raise trouper.InvalidArgument(
            f"ttl {ttl!r} is out of range: it must be between {limits.min_ttl:g}"
            f" and {limits.max_ttl:g} seconds"
        )
    return float(ttl)


def check_data(data: dict[str, str]) -> dict[str, str]:
    if len(data) > MAX_DATA_KEYS:
        raise trouper.InvalidArgument(
            f"data has {len(data)} keys, more than the {MAX_DATA_KEYS} allowed"
        )
    size = 0
    for key, value in data.items():
        if not 1 <= len(key) <= MAX_DATA_KEY_CHARS:
            raise trouper.InvalidArgument(
                f"data key {key[:20]!r} must have 1 to {MAX_DATA_KEY_CHARS} characters"
            )
        size += len(key.encode("utf-8", "surrogatepass"))
        size += len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_DATA_BYTES:
        raise trouper.InvalidArgument(
            f"data holds {size} bytes, more than the {MAX_DATA_BYTES} allowed"
        )
    return dict(data)
