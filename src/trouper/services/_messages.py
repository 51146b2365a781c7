"""What a service call sends: ordinary registered msgspec messages.

A call is a ``Call`` asked of a member (a stream, a ``StreamCall`` streamed
from it); its arguments travel as msgpack bytes that only the server's typed
decoder for that method turns into values, so bytes from the network never
choose which code runs and a wrong type is refused before anything runs.
A failure comes back as an ``RpcFailure`` *value*, not as an exception, so
that a refused call does not crash the member and the client learns whether
the method ran (what decides if a non-idempotent call may go elsewhere).
"""

from __future__ import annotations

import msgspec

from ..protocols import default_registry
from ._breaker import BreakerChanged


class Call(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One attempt of a call. ``id`` is random per attempt (what a cancel
    names), ``key`` random per logical call (the same on every retry: what the
    server deduplicates a non-idempotent method by). ``timeout`` is the time
    left, relative (clocks of two nodes are not comparable)."""

    method: str
    args: bytes
    caller: str
    id: int
    key: int = 0
    timeout: float | None = None
    metadata: dict[str, str] | None = None
    trace: str | None = None  # W3C traceparent of the client's span, when it traces


class StreamCall(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A call of a server-stream method (``ref.stream`` of it)."""

    method: str
    args: bytes
    caller: str
    id: int
    timeout: float | None = None
    metadata: dict[str, str] | None = None


class CancelCall(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Told to the services actor of the node running call ``id`` of
    ``caller``: cancel it (its caller was cancelled)."""

    caller: str
    id: int


class RpcFailure(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A call that failed. ``ran`` is False when the server proves the
    method never started (bad arguments, refused by middleware, unknown
    method): only then may a non-idempotent call be tried elsewhere."""

    code: str
    type_name: str
    message: str
    ran: bool
    retryable: bool = False
    retry_delay: float | None = None
    node: str = ""
    path: str = ""


class LocalFailure:
    """A failure for a caller of the same node: the exception itself, which
    never crosses the wire (the server only returns it when ``Call.caller``
    is its own node)."""

    __slots__ = ("exc", "ran")

    def __init__(self, exc: BaseException, ran: bool) -> None:
        self.exc = exc
        self.ran = ran


# BreakerChanged travels too: events on string topics reach other nodes.
for _tp in (Call, StreamCall, CancelCall, RpcFailure, BreakerChanged):
    default_registry.register(_tp, f"trouper.services:{_tp.__name__}")
