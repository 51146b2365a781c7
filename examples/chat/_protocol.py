"""The chat's WebSocket protocol: JSON text frames, one object each.

Client → server: ``join {room, user}``, ``say {room, text}``, ``leave {room}``.
Server → client: ``joined {room, history, members}``, ``presence {room, user,
status}``, ``message {room, id, user, ts, text}``, ``error {reason}``.

Client frames are decoded with one typed msgspec decoder over a tagged union,
so a frame either becomes a valid ``Join``/``Say``/``Leave`` or a clear
``ProtocolViolation`` with the reason to send back; nothing else is ever
built from client bytes.
"""

from __future__ import annotations

from typing import Annotated, cast

import msgspec

import trouper

#: The longest chat text, in UTF-8 bytes.
MAX_TEXT_BYTES = 4096
#: How many messages a room keeps and a join returns.
HISTORY = 100

RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
UserName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Join(msgspec.Struct, tag="join", tag_field="type", forbid_unknown_fields=True):
    room: RoomName
    user: UserName


class Say(msgspec.Struct, tag="say", tag_field="type", forbid_unknown_fields=True):
    room: RoomName
    text: str


class Leave(msgspec.Struct, tag="leave", tag_field="type", forbid_unknown_fields=True):
    room: RoomName


ClientFrame = Join | Say | Leave


@trouper.message
class ChatMessage(msgspec.Struct, frozen=True):
    """One stored and delivered message (also the ``message`` server frame)."""

    room: str
    id: int
    user: str
    ts: float
    text: str


@trouper.message
class Presence(msgspec.Struct, frozen=True):
    room: str
    user: str
    status: str  # "online" | "offline"


@trouper.message
class Joined(msgspec.Struct, frozen=True):
    room: str
    history: list[ChatMessage]
    members: list[str]


class ProtocolViolation(Exception):
    """A client frame that breaks the protocol; ``reason`` goes back to it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_decoder = msgspec.json.Decoder(ClientFrame)
_encoder = msgspec.json.Encoder()


def parse_client_frame(text: str) -> Join | Say | Leave:
    """Validate one client text frame; raise ``ProtocolViolation`` if bad."""
    try:
        frame = _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"invalid message: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolViolation("not JSON") from None
    if isinstance(frame, Say) and len(frame.text.encode()) > MAX_TEXT_BYTES:
        raise ProtocolViolation(f"text over {MAX_TEXT_BYTES} bytes")
    return cast(Join | Say | Leave, frame)


def render(event: ChatMessage | Presence | Joined) -> str:
    """The server frame (JSON text) for an event."""
    kind = {ChatMessage: "message", Presence: "presence", Joined: "joined"}[type(event)]
    body = msgspec.to_builtins(event)
    return _encoder.encode({"type": kind, **body}).decode()


def render_error(reason: str) -> str:
    return _encoder.encode({"type": "error", "reason": reason}).decode()
