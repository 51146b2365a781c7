"""How events and snapshots look in a store: a type name and the msgpack payload.

Events are msgspec Structs registered like messages (``trouper.message`` or
the ``apply``/``restore`` annotations): the stored record is the pair
``[type name, payload]``, so a record names its own type and an old record
whose type was renamed or reshaped can still be read by an ``upcast`` hook.

Events are plain data: they are decoded without a node (no refs inside).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Union

import msgspec

from .._errors import ConfigurationError, TrouperError
from ..actors._actor import register_message_type
from ..protocols import default_registry
from ..stores import StoreError

__all__ = ["EventCodec", "Upcast", "register_annotated"]

#: ``upcast(type_name, raw)``: the event for an old record, or None to decode it as is.
Upcast = Callable[[str, Any], Any]


class _Stored(msgspec.Struct, array_like=True, frozen=True):
    """One event record: the registered type name and its msgpack payload."""

    t: str
    d: msgspec.Raw


class _StoredSnapshot(msgspec.Struct, array_like=True, frozen=True):
    """One snapshot: the id of the last event it includes, then the state."""

    seq: int
    t: str
    d: msgspec.Raw


class EventCodec:
    """Encodes events and snapshots for a store and decodes them back."""

    __slots__ = ("_codec", "_encoder", "_event", "_snapshot")

    def __init__(self) -> None:
        self._codec = default_registry.codec()  # no hooks: events hold plain data
        self._encoder = msgspec.msgpack.Encoder()
        self._event = msgspec.msgpack.Decoder(_Stored)
        self._snapshot = msgspec.msgpack.Decoder(_StoredSnapshot)

    def payload(self, obj: object) -> tuple[str, msgspec.Raw]:
        """``obj`` as (registered type name, msgpack) for a record to embed."""
        if default_registry.name_of(type(obj)) is None:
            register_message_type(type(obj))  # as a handler annotation would
        name, payload = self._codec.encode_payload(obj)
        return name, msgspec.Raw(payload)

    def encode_event(self, event: object) -> bytes:
        name, raw = self.payload(event)
        return self._encoder.encode(_Stored(name, raw))

    def encode_snapshot(self, seq: int, state: object) -> bytes:
        name, raw = self.payload(state)
        return self._encoder.encode(_StoredSnapshot(seq, name, raw))

    def decode_event(self, where: str, record: bytes, upcast: Upcast | None) -> Any:
        try:
            stored = self._event.decode(record)
        except msgspec.DecodeError as exc:
            raise StoreError(f"{where}: not an event record: {exc}") from exc
        return self.decode(where, stored.t, stored.d, upcast)

    def decode_snapshot(self, where: str, record: bytes, upcast: Upcast | None) -> tuple[int, Any]:
        try:
            stored = self._snapshot.decode(record)
        except msgspec.DecodeError as exc:
            raise StoreError(f"{where}: not a snapshot record: {exc}") from exc
        return stored.seq, self.decode(where, stored.t, stored.d, upcast)

    def decode(self, where: str, name: str, data: msgspec.Raw, upcast: Upcast | None) -> Any:
        """The value ``payload`` gave ``(name, data)`` for (through ``upcast``)."""
        try:
            if upcast is not None:
                raw = msgspec.msgpack.decode(data)
                event = upcast(name, raw)
                if event is not None:
                    return event
                tp = default_registry.type_of(name)
                if tp is None:
                    raise ConfigurationError(f"unknown event type {name!r}")
                return msgspec.convert(raw, tp)
            return self._codec.decode_payload(name, data)
        except (TrouperError, msgspec.MsgspecError) as exc:
            # Stored by an older version of the code, most often: say which
            # record and what to do, rather than a wire-protocol error.
            raise ConfigurationError(
                f"{where}: cannot read a stored {name!r}: {exc} (register the type, or"
                " handle the old shape in upcast(type_name, raw))"
            ) from exc


def register_annotated(fn: Callable[..., Any]) -> None:
    """Register the types annotating ``fn``'s first argument (``apply(self,
    event: A | B)``, ``restore(self, state: S)``) so that a node that has not
    persisted one yet can still read them back."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # a forward reference not defined yet: retried at start
        return
    names = [n for n in fn.__code__.co_varnames[1 : fn.__code__.co_argcount]]
    if not names or names[0] not in hints:
        return
    for tp in _members(hints[names[0]]):
        register_message_type(tp)


def _members(ann: Any) -> list[Any]:
    if typing.get_origin(ann) is Union or isinstance(ann, types.UnionType):
        return [m for arg in typing.get_args(ann) for m in _members(arg)]
    return [ann] if isinstance(ann, type) and issubclass(ann, msgspec.Struct) else []
