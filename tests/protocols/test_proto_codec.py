"""TypeRegistry and PayloadCodec: only registered types come out of the wire."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper._errors import ConfigurationError, ProtocolError
from trouper.protocols import (
    BUILTIN_TYPES,
    FrameDecoder,
    FrameEncoder,
    Tell,
    TypeRegistry,
    WireRef,
    default_registry,
    type_name,
)


class Greet(msgspec.Struct):
    name: str
    times: int = 1


class Point(msgspec.Struct, frozen=True):
    x: float
    y: float


class Holder:
    """Not msgspec-encodable on its own: needs the hooks (like ActorRef)."""

    def __init__(self, ref: WireRef) -> None:
        self.ref = ref

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Holder) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)


class Carry(msgspec.Struct):
    holder: Holder


def test_registered_struct_round_trip() -> None:
    registry = TypeRegistry()
    assert registry.register(Greet) is Greet
    name, data = registry.encode_payload(Greet("Ada", 2))
    assert name == f"{__name__}:Greet" == type_name(Greet)
    assert registry.decode_payload(name, data) == Greet("Ada", 2)
    assert registry.name_of(Greet) == name
    assert registry.type_of(name) is Greet
    assert name in registry and Greet in registry


def test_custom_name() -> None:
    registry = TypeRegistry()
    registry.register(Point, "geo.Point/v1")
    assert registry.encode_payload(Point(1.0, 2.0))[0] == "geo.Point/v1"
    data = msgspec.msgpack.encode({"x": 1.0, "y": 2.0})
    assert registry.decode_payload("geo.Point/v1", data) == Point(1.0, 2.0)


def test_two_stage_decoding_through_a_frame() -> None:
    registry = TypeRegistry()
    registry.register(Greet)
    name, data = registry.encode_payload(Greet("Bob"))
    frame = FrameEncoder().encode([Tell(WireRef("n", "/user/g", 1), name, msgspec.Raw(data))])
    (tell,) = FrameDecoder().feed(frame)
    assert isinstance(tell, Tell)
    assert registry.decode_payload(tell.type_name, tell.payload) == Greet("Bob")
    assert registry.decode_payload(tell.type_name, memoryview(data)) == Greet("Bob")


def test_unknown_type_name_is_a_protocol_error() -> None:
    registry = TypeRegistry()
    data = msgspec.msgpack.encode({"name": "x"})
    with pytest.raises(ProtocolError, match="unknown message type"):
        registry.decode_payload(f"{__name__}:Greet", data)
    with pytest.raises(ProtocolError):
        registry.decode_payload("os:system", msgspec.msgpack.encode("rm -rf /"))


@pytest.mark.parametrize(
    "payload",
    [
        {"name": 3},
        {"times": 2},
        [1, 2],
        "Greet",
        None,
        {"name": "x", "times": "many"},
    ],
)
def test_wrong_shaped_payload_is_a_protocol_error(payload: Any) -> None:
    registry = TypeRegistry()
    registry.register(Greet)
    with pytest.raises(ProtocolError, match="invalid"):
        registry.decode_payload(type_name(Greet), msgspec.msgpack.encode(payload))


@pytest.mark.parametrize("raw", [b"", b"\xc1", b"\x82\xa4name", b"\x81\xa4name\xa1x\xc0"])
def test_garbage_payload_is_a_protocol_error(raw: bytes) -> None:
    registry = TypeRegistry()
    registry.register(Greet)
    with pytest.raises(ProtocolError):
        registry.decode_payload(type_name(Greet), raw)


@pytest.mark.parametrize(
    "value",
    [
        "text",
        42,
        -(2**63),
        2**64 - 1,
        1.5,
        True,
        False,
        None,
        b"\x00bytes",
        [1, "a"],
        {"k": [1]},
        (1, 2),
    ],
)
def test_builtins_round_trip(value: object) -> None:
    registry = TypeRegistry()
    name, data = registry.encode_payload(value)
    assert name == f"builtins:{type(value).__qualname__}"
    decoded = registry.decode_payload(name, data)
    assert decoded == value
    assert type(decoded) is type(value)


def test_builtins_are_strictly_typed() -> None:
    registry = TypeRegistry()
    with pytest.raises(ProtocolError):
        registry.decode_payload("builtins:int", msgspec.msgpack.encode("1"))
    with pytest.raises(ProtocolError):
        registry.decode_payload("builtins:bool", msgspec.msgpack.encode(1))


def test_builtins_can_be_left_out() -> None:
    registry = TypeRegistry(builtins=False)
    assert len(registry) == 0
    with pytest.raises(ConfigurationError):
        registry.encode_payload("text")
    with pytest.raises(ProtocolError):
        registry.decode_payload("builtins:str", msgspec.msgpack.encode("text"))


def test_unregistered_type_cannot_be_sent() -> None:
    with pytest.raises(ConfigurationError, match="not a registered"):
        TypeRegistry().encode_payload(Greet("x"))
    with pytest.raises(ConfigurationError):
        TypeRegistry().encode_payload(object())


def test_registration_conflicts() -> None:
    registry = TypeRegistry()
    registry.register(Greet)
    registry.register(Greet)  # idempotent
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(Point, type_name(Greet))
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(Greet, "other-name")
    with pytest.raises(ConfigurationError, match="reserved"):
        registry.register(Point, "builtins:Point")
    with pytest.raises(ConfigurationError):
        registry.register(Greet("x"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        registry.register(Point, "")


def test_replace_rebinds_and_does_not_reuse_the_old_decoder() -> None:
    registry = TypeRegistry()
    registry.register(Greet, "msg")
    assert registry.decode_payload("msg", msgspec.msgpack.encode({"name": "a"})) == Greet("a")

    class Greet2(msgspec.Struct):
        who: str

    registry.register(Greet2, "msg", replace=True)
    assert registry.type_of("msg") is Greet2
    assert registry.name_of(Greet) is None
    assert registry.decode_payload("msg", msgspec.msgpack.encode({"who": "b"})) == Greet2("b")
    with pytest.raises(ProtocolError):
        registry.decode_payload("msg", msgspec.msgpack.encode({"name": "a"}))


def test_hooks_translate_custom_types() -> None:
    encoded: list[object] = []

    def enc_hook(obj: Any) -> Any:
        if isinstance(obj, Holder):
            encoded.append(obj)
            return obj.ref
        raise NotImplementedError

    def dec_hook(tp: type, obj: Any) -> Any:
        if tp is Holder:
            return Holder(msgspec.convert(obj, WireRef))
        raise NotImplementedError

    registry = TypeRegistry(enc_hook=enc_hook, dec_hook=dec_hook)
    registry.register(Carry)
    msg = Carry(Holder(WireRef("n", "/user/x", 5)))
    name, data = registry.encode_payload(msg)
    assert encoded == [msg.holder]
    assert registry.decode_payload(name, data) == msg


def test_per_node_codecs_share_the_live_table() -> None:
    registry = TypeRegistry()
    codec = registry.codec(
        enc_hook=lambda obj: obj.ref,
        dec_hook=lambda tp, obj: Holder(msgspec.convert(obj, WireRef)),
    )
    registry.register(Carry)  # registered after the codec was made
    msg = Carry(Holder(WireRef("n", "/user/x", 5)))
    name, data = codec.encode_payload(msg)
    assert codec.decode_payload(name, data) == msg
    with pytest.raises(ConfigurationError):
        registry.encode_payload(msg)  # the registry's own codec has no hooks


def test_hook_errors_become_protocol_errors_on_decode() -> None:
    def dec_hook(tp: type, obj: Any) -> Any:
        raise ValueError("no such actor")

    registry = TypeRegistry(dec_hook=dec_hook)
    registry.register(Carry)
    with pytest.raises(ProtocolError):
        registry.decode_payload(type_name(Carry), msgspec.msgpack.encode({"holder": [1, 2, 3]}))


def test_default_registry_exists_with_builtins() -> None:
    assert isinstance(default_registry, TypeRegistry)
    assert set(BUILTIN_TYPES) <= set(default_registry)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([type_name(Greet), "builtins:str", "builtins:dict", "nope:Nope"]),
    raw=st.binary(max_size=200),
)
def test_random_payload_bytes_only_raise_protocol_errors(name: str, raw: bytes) -> None:
    registry = TypeRegistry()
    registry.register(Greet)
    try:
        registry.decode_payload(name, raw)
    except ProtocolError:
        pass
