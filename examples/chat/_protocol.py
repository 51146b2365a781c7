"""The chat's WebSocket protocol: JSON text frames, one object each.

Client → server: ``hello {}``, ``join {room, user}``, ``say {room, text,
seq}``, ``leave {room}``, ``ping {}``.
Server → client: ``welcome {auth, user, limits}``, ``joined {room, history,
members}``, ``presence {room, user, status}``, ``message {room, id, user, ts,
text, seq}``, ``error {reason, code, room, seq}``.

Client frames are decoded with one typed msgspec decoder over a tagged union,
so a frame either becomes a valid ``Join``/``Say``/``Leave`` or a clear
``ProtocolViolation`` with the reason to send back; nothing else is ever
built from client bytes.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

import msgspec

import trouper

#: The longest chat text, in UTF-8 bytes.
MAX_TEXT_BYTES = 4096
#: How many messages a room keeps and a join returns.
HISTORY = 100

#: The largest client sequence number: JavaScript's largest safe integer.
MAX_SEQ = 2**53 - 1

RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
UserName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]


class Join(msgspec.Struct, tag="join", tag_field="type", forbid_unknown_fields=True):
    room: RoomName
    user: UserName  # in JWT mode, the token's name: any other is refused
    #: A secret of the page (per browser tab): a join with the same one takes
    #: the name over from the tab's previous, maybe half-dead, session.
    resume: Annotated[str, msgspec.Meta(max_length=64)] = ""


class Say(msgspec.Struct, tag="say", tag_field="type", forbid_unknown_fields=True):
    room: RoomName
    text: str
    #: The client's number for this message (0: none). A message resent with
    #: the same number after a reconnect is stored and shown once.
    seq: Seq = 0


class Leave(msgspec.Struct, tag="leave", tag_field="type", forbid_unknown_fields=True):
    room: RoomName


class Hello(msgspec.Struct, tag="hello", tag_field="type", forbid_unknown_fields=True):
    """Asks for the ``welcome`` frame: the auth mode, the user, the limits."""


class Ping(msgspec.Struct, tag="ping", tag_field="type", forbid_unknown_fields=True):
    """Keeps an idle connection alive (see ``ChatSettings.idle_timeout``)."""


ClientFrame = Join | Say | Leave | Hello | Ping


@trouper.message
class ChatMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    """One stored and delivered message (also the ``message`` server frame)."""

    room: str
    id: int
    user: str
    ts: float
    text: str
    seq: int = 0  # the author's client sequence number (0: none, not rendered)


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


def canonical_name(name: str) -> str:
    """The form under which a user name is claimed in a room: "Admin",
    "admin" and the full-width "admin" are one name."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def _bad_name(name: str) -> str | None:
    if not canonical_name(name):
        return "a name must not be blank"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "a name must not contain control characters"
    return None


def parse_client_frame(text: str) -> Join | Say | Leave | Hello | Ping:
    """Validate one client text frame; raise ``ProtocolViolation`` if bad."""
    try:
        frame = _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise ProtocolViolation(f"invalid message: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolViolation("not JSON") from None
    if isinstance(frame, Say) and len(frame.text.encode()) > MAX_TEXT_BYTES:
        raise ProtocolViolation(f"text over {MAX_TEXT_BYTES} bytes")
    if isinstance(frame, Join) and (bad := _bad_name(frame.user)):
        raise ProtocolViolation(f"invalid message: {bad}")
    return frame


def render(event: ChatMessage | Presence | Joined) -> str:
    """The server frame (JSON text) for an event."""
    kind = {ChatMessage: "message", Presence: "presence", Joined: "joined"}[type(event)]
    body = msgspec.to_builtins(event)
    return _encoder.encode({"type": kind, **body}).decode()


def render_error(reason: str, code: str = "invalid", room: str | None = None, seq: int = 0) -> str:
    """An ``error`` frame: ``reason`` for people, ``code`` for the page;
    ``room`` and ``seq`` name the join or message refused, when there is one."""
    frame: dict[str, object] = {"type": "error", "reason": reason, "code": code}
    if room is not None:
        frame["room"] = room
    if seq:
        frame["seq"] = seq
    return _encoder.encode(frame).decode()


def render_welcome(auth: str, user: str | None, limits: dict[str, float]) -> str:
    frame = {"type": "welcome", "auth": auth, "user": user, "limits": limits}
    return _encoder.encode(frame).decode()
