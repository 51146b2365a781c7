"""``trouper.current_call()`` and the bounds of call metadata."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING

import msgspec

from .._errors import ConfigurationError, InvalidArgument

if TYPE_CHECKING:
    from ..runtime import ActorRef

#: Bounds of a call's metadata, checked by the proxy before sending and by
#: the server before anything runs (docs/remote.md, limits).
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024
MAX_METADATA_BYTES = 4096


class CallContext(msgspec.Struct, frozen=True, gc=False):
    """The call being handled (``trouper.current_call()`` inside an rpc method
    or a server middleware).

    ``deadline`` is in ``trio.current_time()`` terms (None: no deadline),
    ``caller`` the calling node's id, ``caller_ref`` the calling actor (None
    for a call from outside actors), ``metadata`` the call's small str→str map.
    """

    method: str
    deadline: float | None
    caller: str
    caller_ref: ActorRef | None
    metadata: Mapping[str, str]
    service: str = ""
    roles: frozenset[str] = frozenset()
    idempotent: bool = False


_current: ContextVar[CallContext | None] = ContextVar("trouper_current_call", default=None)


def current_call() -> CallContext:
    """The ``CallContext`` of the rpc call being handled; ConfigurationError
    outside one."""
    ctx = _current.get()
    if ctx is None:
        raise ConfigurationError("current_call() is only available inside an rpc call")
    return ctx


def check_metadata(metadata: object) -> dict[str, str] | None:
    """``metadata`` as a dict, or ``InvalidArgument`` naming the bound it breaks."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata is a str->str mapping, not {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidArgument(
            f"metadata has {len(metadata)} entries, at most {MAX_METADATA_ENTRIES} are allowed"
        )
    total = 0
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"metadata is str->str: {k!r}: {v!r}")
        if not 0 < len(k) <= MAX_METADATA_KEY:
            raise InvalidArgument(f"metadata key {k[:80]!r} is not 1 to {MAX_METADATA_KEY} chars")
        if len(v) > MAX_METADATA_VALUE:
            raise InvalidArgument(
                f"metadata value of {k!r} is {len(v)} chars, at most {MAX_METADATA_VALUE}"
            )
        total += len(k.encode()) + len(v.encode())
    if total > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is {total} bytes, at most {MAX_METADATA_BYTES}")
    return dict(metadata)
