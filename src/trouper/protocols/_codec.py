"""User payloads: a registry of message types and the codec that uses it.

Bytes from the network never choose which code runs: a payload arrives with a
type *name*, and it is decoded only if that name was registered, only into the
type registered under it, with a typed msgspec Decoder. No pickle.

The name table (``TypeRegistry``) is separate from the encoders and decoders
(``PayloadCodec``) because the two have different owners: the runtime keeps
one process-wide table that message classes register into, while each node
builds its own codec with hooks bound to itself (translating ``ActorRef`` to
``WireRef`` and back needs the node). A codec reads the table live, so types
registered after the codec was made are understood too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgspec

from trouper._errors import ConfigurationError, RemoteProtocolError, TrouperError

__all__ = [
    "BUILTIN_TYPES",
    "DecHook",
    "EncHook",
    "PayloadCodec",
    "TypeRegistry",
    "default_registry",
    "type_name",
]

T = TypeVar("T")

#: msgspec's ``enc_hook``: turns an object msgspec cannot encode into one it can.
EncHook = Callable[[Any], Any]
#: msgspec's ``dec_hook``: builds an instance of a custom type from decoded data.
DecHook = Callable[[type, Any], Any]

#: Plain values that may be sent as they are. Their names follow the default
#: ``module:qualname`` rule, and the ``builtins:`` prefix is reserved for them.
#: Containers decode untyped (a list of Structs comes back as a list of lists
#: or dicts); send a registered Struct to keep the types.
BUILTIN_TYPES: dict[str, type] = {
    f"builtins:{tp.__qualname__}": tp
    for tp in (str, int, float, bool, type(None), bytes, list, dict, tuple)
}

_RESERVED_PREFIX = "builtins:"


def type_name(tp: type) -> str:
    """The default stable name of ``tp``: ``"module:QualName"``."""
    return f"{tp.__module__}:{tp.__qualname__}"


class TypeRegistry:
    """A two-way map between stable type names and message types.

    ``encode_payload``/``decode_payload`` use a codec built with the hooks
    given here; ``codec()`` builds more, with other hooks, over the same table.
    """

    __slots__ = ("_by_name", "_by_type", "_codec")

    def __init__(
        self,
        *,
        enc_hook: EncHook | None = None,
        dec_hook: DecHook | None = None,
        builtins: bool = True,
    ) -> None:
        self._by_name: dict[str, type] = {}
        self._by_type: dict[type, str] = {}
        if builtins:
            for name, tp in BUILTIN_TYPES.items():
                self._by_name[name] = tp
                self._by_type[tp] = name
        self._codec = PayloadCodec(self, enc_hook=enc_hook, dec_hook=dec_hook)

    def register(self, tp: type[T], name: str | None = None, *, replace: bool = False) -> type[T]:
        """Make ``tp`` sendable under ``name`` (default ``"module:QualName"``).

        Registering the same type under the same name again is a no-op. A name
        or a type already bound differently is a ``ConfigurationError`` unless
        ``replace`` (for code that redefines a class, e.g. on reload). Returns
        ``tp``, so a wrapper can use it as a class decorator.
        """
        if not isinstance(tp, type):
            raise ConfigurationError(f"only classes can be registered, not {tp!r}")
        if name is None:
            name = type_name(tp)
        if not name:
            raise ConfigurationError("a type name cannot be empty")
        if name.startswith(_RESERVED_PREFIX) and BUILTIN_TYPES.get(name) is not tp:
            raise ConfigurationError(f"type names starting {_RESERVED_PREFIX!r} are reserved")
        old_type = self._by_name.get(name)
        old_name = self._by_type.get(tp)
        if old_type is tp and old_name == name:
            return tp
        if not replace:
            if old_type is not None:
                raise ConfigurationError(f"{name!r} is already registered for {old_type!r}")
            if old_name is not None:
                raise ConfigurationError(f"{tp!r} is already registered as {old_name!r}")
        if old_type is not None:
            del self._by_type[old_type]
        if old_name is not None:
            del self._by_name[old_name]
        self._by_name[name] = tp
        self._by_type[tp] = name
        return tp

    def name_of(self, tp: type) -> str | None:
        return self._by_type.get(tp)

    def type_of(self, name: str) -> type | None:
        return self._by_name.get(name)

    def __contains__(self, item: object) -> bool:
        return item in self._by_name or item in self._by_type

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_name))

    def __len__(self) -> int:
        return len(self._by_name)

    def codec(
        self, *, enc_hook: EncHook | None = None, dec_hook: DecHook | None = None
    ) -> PayloadCodec:
        """A new codec over this registry's (live) table, with its own hooks."""
        return PayloadCodec(self, enc_hook=enc_hook, dec_hook=dec_hook)

    def encode_payload(self, msg: object) -> tuple[str, bytes]:
        return self._codec.encode_payload(msg)

    def decode_payload(
        self, type_name: str, raw: bytes | bytearray | memoryview | msgspec.Raw
    ) -> object:
        return self._codec.decode_payload(type_name, raw)


class PayloadCodec:
    """Encodes and decodes payloads of the types in a ``TypeRegistry``.

    One msgspec Encoder is reused for every message; one typed Decoder is
    built per type on first use and cached.
    """

    __slots__ = ("_dec_hook", "_decoders", "_encoder", "registry")

    def __init__(
        self,
        registry: TypeRegistry,
        *,
        enc_hook: EncHook | None = None,
        dec_hook: DecHook | None = None,
    ) -> None:
        self.registry = registry
        self._encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
        self._dec_hook = dec_hook
        # Keyed by type, not name: a name re-registered for a new class must
        # not reuse the old class's decoder.
        self._decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}

    def encode_payload(self, msg: object) -> tuple[str, bytes]:
        """``(type name, msgpack bytes)`` of ``msg``, whose type is registered."""
        tp = type(msg)
        name = self.registry._by_type.get(tp)
        if name is None:
            raise ConfigurationError(
                f"{type_name(tp)} is not a registered message type; register it to send it"
            )
        try:
            return name, self._encoder.encode(msg)
        except TrouperError:
            raise
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
            raise ConfigurationError(f"cannot encode a {name} message: {exc}") from exc

    def decode_payload(
        self, type_name: str, raw: bytes | bytearray | memoryview | msgspec.Raw
    ) -> object:
        """Decode ``raw`` into the type registered as ``type_name``.

        Anything wrong with the name or the bytes is a ``RemoteProtocolError``
        (the runtime fails only that one message with it);
        errors the ``dec_hook`` raises as trouper errors pass through.
        """
        tp = self.registry._by_name.get(type_name)
        if tp is None:
            raise RemoteProtocolError(f"unknown message type {type_name!r}")
        decoder = self._decoders.get(tp)
        if decoder is None:
            decoder = self._decoder_for(tp, type_name)
        try:
            return decoder.decode(raw)
        except TrouperError:
            raise
        except msgspec.ValidationError as exc:
            raise RemoteProtocolError(f"invalid {type_name} payload: {exc}") from exc
        except Exception as exc:
            # Peer bytes must surface as RemoteProtocolError only (msgspec may also
            # raise DecodeError, RecursionError...).
            raise RemoteProtocolError(f"undecodable {type_name} payload: {exc}") from exc

    def _decoder_for(self, tp: type, type_name: str) -> msgspec.msgpack.Decoder[Any]:
        try:
            decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(
                tp, dec_hook=self._dec_hook
            )
        except TypeError as exc:
            raise ConfigurationError(f"{type_name} cannot be decoded by msgspec: {exc}") from exc
        self._decoders[tp] = decoder
        return decoder


#: The process-wide table; the runtime's ``message`` decorator registers here.
default_registry = TypeRegistry()
