"""The chat server: a room directory and one ``ChatSession`` per WebSocket.

Each node runs a ``RoomDirectory`` (named "chat-rooms"). It and the rooms
share the node's store (``open_node(store=URL)``, or the URL they are given). There is one room
actor per room in the whole cluster, registered as ``room:<name>`` on the node
that hosts it. To find a room the directory looks the name up in the cluster;
if nobody has it, it claims the room in the store (``chat/owner/<room>``,
``compare_and_set``: the claim of an owner that is not up may be taken over)
and the winner spawns it as its supervised child; the others wait for the
name to appear. So a room whose node crashed is re-created, with its history,
on a live node by whichever directory is asked first.

A ``ChatSession`` watches the rooms it joined: when one stops (its node went
down), it asks the directory again and re-enters the new room as the same
user. A ``say`` that meets a dead room is retried once on the re-resolved
room, with the same sequence number (so the room never stores it twice), and
otherwise answered with an error frame: never lost in silence.
"""

# No ``from __future__ import annotations``: handler annotations of session
# subclasses must be real classes (see trouper.web._session).
from pathlib import Path

import msgspec
import trio

import trouper
from trouper.stores import Store
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession

from ._protocol import (
    Join,
    Leave,
    ProtocolViolation,
    Say,
    parse_client_frame,
    render_error,
)
from ._room import EnterRoom, ExitRoom, Post, RoomActor

STATIC = Path(__file__).parent / "static"


@trouper.message
class GetRoom(msgspec.Struct, frozen=True):
    room: str


#: Errors that mean "the room (or its node) is gone": re-resolve it.
ROOM_GONE = (trouper.ActorDead, trouper.NodeDown, trouper.ConnectionLost, trouper.AskTimeout)
#: ... and those that mean "no room right now": say so to the client.
UNAVAILABLE = (*ROOM_GONE, trouper.ActorNotFound, trouper.SpawnRefused, trouper.RemoteError)
#: How long a directory tries to find or claim a room.
CLAIM_TIMEOUT = 15.0
#: How long a claim by a node that this one has never heard of is respected.
UNKNOWN_OWNER_WAIT = 2.0


class RoomDirectory(trouper.Actor):
    """Finds the actor of each room in the cluster, or creates it on this node."""

    def __init__(self, store_url: str | None = None, claim_timeout: float = CLAIM_TIMEOUT) -> None:
        self.store_url = store_url  # None: the node's default store (open_node(store=))
        self.claim_timeout = claim_timeout

    async def on_start(self) -> None:
        # The node's shared store: the directory and every room of this node
        # use one connection (pool) per store URL, however many rooms there are.
        self.store: Store = await self.ctx.store(self.store_url)

    @trouper.handler
    async def get(self, msg: GetRoom) -> trouper.ActorRef:
        node = self.ctx.node
        name = f"room:{msg.room}"
        key = f"chat/owner/{msg.room}"
        me = node.id.encode()
        waited_for_stranger = False
        with trio.move_on_after(self.claim_timeout):
            while True:
                try:
                    return await node.lookup(name)
                except trouper.ActorNotFound:
                    pass
                owner = await self.store.get(key)
                members = {m.node_id.encode(): m.status for m in node.members()}
                if owner is not None and owner not in members and not waited_for_stranger:
                    # An owner this node never heard of: a node not met yet,
                    # or one long gone. Give gossip a moment before taking over.
                    waited_for_stranger = True
                    if node.addresses or len(members) > 1:
                        try:
                            return await node.lookup(name, timeout=UNKNOWN_OWNER_WAIT)
                        except trouper.ActorNotFound:
                            continue
                if owner == me or owner is None or members.get(owner) in (None, "down"):
                    # Nobody alive hosts it: claim it (one claimant wins).
                    if owner == me or await self.store.compare_and_set(key, owner, me):
                        try:
                            return await self.ctx.spawn(
                                RoomActor, msg.room, self.store_url, name=name, restart="permanent"
                            )
                        except trouper.NameTaken:
                            pass
                    continue
                try:  # a live node claimed it: its room will show up
                    return await node.lookup(name, timeout=1.0)
                except trouper.ActorNotFound:
                    pass  # not yet, or its node died meanwhile: look again
        raise trouper.ActorNotFound(f"room {msg.room!r} could not be found or created")


class ChatSession(WebSocketSession):
    """One browser tab: its rooms, and the protocol rules for its frames."""

    def __init__(self, connection: WebSocketConnection, directory: trouper.ActorRef) -> None:
        super().__init__(connection)
        self.directory = directory
        self.rooms: dict[str, trouper.ActorRef] = {}
        self.users: dict[str, str] = {}  # room -> the user this session is there
        self.posts = 0  # sequence numbers of this session's posts

    async def _enter(self, name: str, user: str, rejoin: bool) -> None:
        """Find the room (wherever it lives), enter it and watch it. The room
        sends the "joined" frame itself (not on a rejoin)."""
        room = await self.directory.ask(GetRoom(name), timeout=CLAIM_TIMEOUT + 5)
        await room.ask(EnterRoom(user, self.ctx.self_ref, rejoin))
        old = self.rooms.get(name)
        if old is not None and old != room:
            self.ctx.unwatch(old)
        self.rooms[name] = room
        self.users[name] = user
        self.ctx.watch(room)

    async def _post(self, name: str, text: str) -> None:
        self.posts += 1
        post = Post(self.ctx.self_ref, text, self.posts)  # a retry has the same seq
        for attempt in range(2):
            try:
                if attempt:  # the room is gone or forgot us: find it again
                    await self._enter(name, self.users[name], rejoin=True)
                if await self.rooms[name].ask(post) is not None:
                    return  # delivered to everyone, us included
            except UNAVAILABLE:
                pass
        self.send_text(render_error(f"room {name!r} unavailable, retry"))

    async def on_text(self, text: str) -> None:
        try:
            frame = parse_client_frame(text)
        except ProtocolViolation as exc:
            self.send_text(render_error(exc.reason))
            return
        me = self.ctx.self_ref
        if isinstance(frame, Join):
            for _attempt in range(2):
                try:
                    await self._enter(frame.room, frame.user, rejoin=False)
                except UNAVAILABLE:
                    continue
                return
            self.send_text(render_error(f"room {frame.room!r} unavailable, retry"))
        elif isinstance(frame, Say):
            if frame.room not in self.rooms:
                self.send_text(render_error(f"not in room {frame.room!r}: join it first"))
                return
            await self._post(frame.room, frame.text)
        elif isinstance(frame, Leave):
            room = self.rooms.pop(frame.room, None)
            self.users.pop(frame.room, None)
            if room is None:
                self.send_text(render_error(f"not in room {frame.room!r}"))
                return
            self.ctx.unwatch(room)
            try:
                await room.ask(ExitRoom(me))
            except ROOM_GONE:
                pass  # the room is gone, and we with it

    @trouper.handler
    async def room_stopped(self, msg: trouper.Terminated) -> None:
        """A room we are in stopped (or its node went down): re-enter its successor."""
        for name, room in list(self.rooms.items()):
            if room != msg.ref or self.closing:
                continue
            try:
                await self._enter(name, self.users[name], rejoin=True)
            except UNAVAILABLE:
                self.send_text(render_error(f"room {name!r} unavailable, retry"))

    async def on_disconnect(self, code: int) -> None:
        for room in self.rooms.values():
            try:
                room.tell_nowait(ExitRoom(self.ctx.self_ref))
            except trouper.TrouperError:
                pass  # gone already, or its link is full: it will see us stop
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
