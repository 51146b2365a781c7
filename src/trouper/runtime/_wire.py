"""Where runtime objects meet the sans-IO protocol: message registration,
``ActorRef`` <-> ``WireRef`` translation, and exceptions boxed as ``Failure``.

Payloads are decoded only into registered types (``trouper.message``, or a
handler's annotated types, which register themselves): bytes from the network
never choose which code runs.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .. import _errors as errors
from ..protocols import Failure, PayloadCodec, WireRef, default_registry
from ..protocols._envelopes import ErrorDetail
from ._ref import ActorRef

if TYPE_CHECKING:
    from ._remote import Remoting

T = TypeVar("T")

#: ActorRefs may be sent as payloads (and inside any message).
default_registry.register(ActorRef, "trouper:ActorRef")


@overload
def message(cls: type[T], *, name: str | None = None) -> type[T]: ...
@overload
def message(*, name: str | None = None) -> Callable[[type[T]], type[T]]: ...
def message(cls: type[T] | None = None, *, name: str | None = None) -> Any:
    """Register a message type so it can cross the wire (a class decorator).

    Types named in handler annotations register themselves; use this for the
    others (replies inside containers, stream items, messages sent only from
    outside actors). ``name`` defaults to ``"module:QualName"`` and must be the
    same on every node.
    """

    def register(tp: type[T]) -> type[T]:
        return default_registry.register(tp, name)

    return register if cls is None else register(cls)


def make_codec(remoting: Remoting) -> PayloadCodec:
    """A payload codec whose hooks translate refs for ``remoting``'s node."""

    def enc_hook(obj: Any) -> Any:
        if isinstance(obj, ActorRef):
            return (obj.node_id, obj.path, obj.uid)
        raise NotImplementedError(f"cannot encode {type(obj).__name__} values")

    def dec_hook(tp: type, obj: Any) -> Any:
        if tp is ActorRef:
            if not (isinstance(obj, list) and len(obj) == 3):
                raise errors.ProtocolError("an ActorRef is [node, path, uid]")
            node, path, uid = obj
            if not (isinstance(node, str) and isinstance(path, str) and isinstance(uid, int)):
                raise errors.ProtocolError("an ActorRef is [node, path, uid]")
            return remoting.resolve(node, path, uid)
        raise NotImplementedError(f"cannot decode {tp!r}")

    return default_registry.codec(enc_hook=enc_hook, dec_hook=dec_hook)


def wire_ref(ref: ActorRef) -> WireRef:
    wire: WireRef | None = ref._wire
    if wire is None:
        wire = ref._wire = WireRef(ref.node_id, ref.path, ref.uid)
    return wire


# -------------------------------------------------------------- errors


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def error_detail(exc: BaseException, node: str, path: str) -> ErrorDetail:
    """What of an exception crosses the wire: never the object itself."""
    if isinstance(exc, errors.RemoteError):
        return ErrorDetail(exc.type_name, exc.message, exc.traceback, exc.node, exc.path)
    return ErrorDetail(
        type_name=_type_name(exc),
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
        node=node,
        path=path,
        error_code=getattr(exc, "error_code", "remote"),
        retryable=bool(getattr(exc, "is_retryable", False)),
    )


def failure(id: int, exc: BaseException, node: str, path: str) -> Failure:
    d = error_detail(exc, node, path)
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
    )
}


def unbox(d: Failure | ErrorDetail) -> errors.TrouperError:
    own = _OWN_ERRORS.get(d.error_code)
    if own is not None and d.type_name.startswith("trouper."):
        return own(f"{d.message} (on {d.node})")
    return errors.RemoteError(d.type_name, d.message, d.traceback, d.node, d.path)
