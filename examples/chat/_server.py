"""The chat server: a room directory and one ``ChatSession`` per WebSocket.

``RoomDirectory`` creates each room on first join, as its supervised child
(a crashed room restarts with its history from the store), so rooms are
created once even when many sessions join at the same moment.
"""

# No ``from __future__ import annotations``: handler annotations of session
# subclasses must be real classes (see trouper.web._session).
from pathlib import Path

import msgspec

import trouper
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession

from ._protocol import (
    ChatMessage,
    Join,
    Leave,
    Presence,
    ProtocolViolation,
    Say,
    parse_client_frame,
    render,
    render_error,
)
from ._room import EnterRoom, ExitRoom, Post, RoomActor

STATIC = Path(__file__).parent / "static"


@trouper.message
class GetRoom(msgspec.Struct, frozen=True):
    room: str


class RoomDirectory(trouper.Actor):
    """Finds or creates the actor of each room on this node."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url
        self.rooms: dict[str, trouper.ActorRef] = {}

    @trouper.handler
    async def get(self, msg: GetRoom) -> trouper.ActorRef:
        room = self.rooms.get(msg.room)
        if room is None:
            room = await self.ctx.spawn(RoomActor, msg.room, self.store_url, restart="permanent")
            self.rooms[msg.room] = room
        return room


class ChatSession(WebSocketSession):
    """One browser tab: its rooms, and the protocol rules for its frames."""

    def __init__(self, connection: WebSocketConnection, directory: trouper.ActorRef) -> None:
        super().__init__(connection)
        self.directory = directory
        self.rooms: dict[str, trouper.ActorRef] = {}

    async def on_text(self, text: str) -> None:
        try:
            frame = parse_client_frame(text)
        except ProtocolViolation as exc:
            self.send_text(render_error(exc.reason))
            return
        me = self.ctx.self_ref
        if isinstance(frame, Join):
            room = await self.directory.ask(GetRoom(frame.room))
            joined = await room.ask(EnterRoom(frame.user, me))
            self.rooms[frame.room] = room
            self.send_text(render(joined))
        elif isinstance(frame, Say):
            room = self.rooms.get(frame.room)
            if room is None:
                self.send_text(render_error(f"not in room {frame.room!r}: join it first"))
                return
            await room.ask(Post(me, frame.text))  # delivered to everyone, us included
        elif isinstance(frame, Leave):
            room = self.rooms.pop(frame.room, None)
            if room is None:
                self.send_text(render_error(f"not in room {frame.room!r}"))
                return
            await room.ask(ExitRoom(me))

    @trouper.handler
    async def event(self, msg: ChatMessage | Presence) -> None:
        self.send_text(render(msg))

    async def on_disconnect(self, code: int) -> None:
        for room in self.rooms.values():
            room.tell_nowait(ExitRoom(self.ctx.self_ref))
        self.rooms.clear()


def gateway_config(
    directory: trouper.ActorRef, host: str = "127.0.0.1", port: int = 0
) -> WebGateway:
    """The gateway settings of the chat: 64 KiB frames, the page at ``/``."""
    return WebGateway(
        host=host,
        port=port,
        static_dir=STATIC,
        ws_path="/ws",
        max_message_size=64 * 1024,
        session=ChatSession,
        session_args=(directory,),
    )
