"""What the envelopes are made of: bounded scalar types, actor addresses,
member and error records, and the base class every envelope derives from
(``_envelopes.py`` has the core envelopes and the union,
``_service_envelopes.py`` those of channels, groups and events)."""

from __future__ import annotations

from typing import Annotated

import msgspec

#: Ids, sequence numbers and incarnations: unsigned 64-bit integers (msgpack
#: itself caps integers at 2**64 - 1; msgspec cannot express that bound).
U64 = Annotated[int, msgspec.Meta(ge=0)]
#: Credits granted at once; bounded so a peer cannot overflow a window.
Credits = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
#: Handshake nonces: at least 128 bits of the caller's randomness.
Nonce = Annotated[bytes, msgspec.Meta(min_length=16, max_length=64)]
#: An HMAC-SHA256 digest.
Proof = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class WireRef(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """An actor address as it travels: node id, actor path and uid."""

    node: str
    path: str
    uid: U64


class Member(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One node as gossip describes it."""

    node: NodeId
    incarnation: U64
    addresses: list[str]
    status: str
    version: U64


class ErrorDetail(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Why a stream ended abnormally (the fields of ``Failure`` without an id)."""

    type_name: str
    message: str
    traceback: str = ""
    node: str = ""
    path: str = ""
    error_code: str = "remote"
    retryable: bool = False


class EnvelopeBase(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Shared configuration of the envelope structs (not itself on the wire)."""
