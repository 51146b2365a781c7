"""Where runtime objects meet the sans-IO protocol: ``ActorRef`` <-> ``WireRef``,
payloads for one node, and exceptions boxed as data.

Payloads are decoded only into registered types (``trouper.message``, or a
handler's annotated types, which register themselves): bytes from the network
never choose which code runs.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import msgspec

from .. import _errors as errors
from ..protocols import ErrorDetail, Failure, PayloadCodec, WireRef, default_registry
from ..runtime import ActorRef


def make_codec(resolve: Callable[[str, str, int], ActorRef]) -> PayloadCodec:
    """A payload codec whose hooks turn refs into ``[node, path, uid]`` and back
    into refs that route through the receiving node (``resolve``)."""

    def enc_hook(obj: Any) -> Any:
        if isinstance(obj, ActorRef):
            return (obj.node_id, obj.path, obj.uid)
        raise NotImplementedError(f"cannot encode {type(obj).__name__} values")

    def dec_hook(tp: type, obj: Any) -> Any:
        if tp is ActorRef:
            if (
                isinstance(obj, list)
                and len(obj) == 3
                and isinstance(obj[0], str)
                and isinstance(obj[1], str)
                and type(obj[2]) is int
                and obj[2] >= 0
            ):
                return resolve(obj[0], obj[1], obj[2])
            raise errors.RemoteProtocolError("an ActorRef is [node, path, uid]")
        raise NotImplementedError(f"cannot decode {tp!r}")

    return default_registry.codec(enc_hook=enc_hook, dec_hook=dec_hook)


def wire_ref(ref: ActorRef) -> WireRef:
    wire: WireRef | None = ref._wire
    if wire is None:
        wire = ref._wire = WireRef(ref.node_id, ref.path, ref.uid)
    return wire


def raw(payload: bytes) -> msgspec.Raw:
    return msgspec.Raw(payload)


# -------------------------------------------------------------- errors


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def error_detail(exc: BaseException, node: str, path: str, *, tracebacks: bool) -> ErrorDetail:
    """What of an exception crosses the wire: never the object itself, and the
    traceback text only when the node was asked to (``remote_tracebacks``)."""
    if isinstance(exc, errors.RemoteError):
        return ErrorDetail(
            exc.type_name, exc.message, exc.traceback if tracebacks else "", exc.node, exc.path
        )
    return ErrorDetail(
        type_name=_type_name(exc),
        message=str(exc)[:4096],
        traceback="".join(traceback.format_exception(exc)) if tracebacks else "",
        node=node,
        path=path,
        error_code=str(getattr(exc, "error_code", "remote")),
        retryable=bool(getattr(exc, "is_retryable", False)),
    )


def failure(id: int, exc: BaseException, node: str, path: str, *, tracebacks: bool) -> Failure:
    d = error_detail(exc, node, path, tracebacks=tracebacks)
    return Failure(
        id, d.type_name, d.message, d.traceback, d.node, d.path, d.error_code, d.retryable
    )


#: trouper's own errors come back as themselves (an ask of a dead remote
#: actor raises ActorDead, as it would locally); anything else is boxed.
_OWN_ERRORS: dict[str, type[errors.TrouperError]] = {
    cls.error_code: cls
    for cls in (
        errors.ActorDead,
        errors.ActorNotFound,
        errors.UnhandledMessage,
        errors.MailboxFull,
        errors.AskTimeout,
        errors.NameTaken,
        errors.SpawnRefused,
        errors.NodeDown,
        errors.ConfigurationError,
        errors.FrameTooLarge,
        errors.ChannelClosed,
    )
}


def unbox(d: Failure | ErrorDetail) -> errors.TrouperError:
    own = _OWN_ERRORS.get(d.error_code)
    if own is not None and d.type_name.startswith("trouper."):
        return own(f"{d.message} (on {d.node})")
    return errors.RemoteError(d.type_name, d.message, d.traceback, d.node, d.path)
