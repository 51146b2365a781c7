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

Limits (``ChatSettings``, ``RoomDirectory(max_rooms=)``): a connection is in
at most ``max_rooms_per_connection`` rooms, a node hosts at most
``max_rooms`` rooms; a join over either is refused with an ``error`` frame
naming the limit, before any room is created. With a ``jwt_secret`` the
user is the token's (``_auth``) and a join under any other name is refused.
A page that says ``hello`` promises a ``ping`` at least every
``idle_timeout / 3``: its session closes after ``idle_timeout`` without a
frame, which frees its names in its rooms even when its TCP connection died
without a word (half-dead).
"""

# No ``from __future__ import annotations``: handler annotations of session
# subclasses must be real classes (see trouper.web._session).
from pathlib import Path

import attrs
import msgspec
import trio

import trouper
from trouper.stores import Store
from trouper.web import WebGateway, WebSocketConnection, WebSocketSession

from ._auth import AuthError, token_from_scope, verify_token
from ._protocol import (
    MAX_TEXT_BYTES,
    Hello,
    Join,
    Leave,
    ProtocolViolation,
    Say,
    canonical_name,
    parse_client_frame,
    render_error,
    render_welcome,
)
from ._room import PASSIVATE_AFTER, EnterRoom, ExitRoom, Post, Refused, Replaced, RoomActor

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
#: Joins tried on a room that is passivating before answering "unavailable".
CLOSING_RETRIES = 5
#: Rooms one connection may be in at once.
MAX_ROOMS_PER_CONNECTION = 20
#: Rooms one node may host at once.
MAX_ROOMS_PER_NODE = 10_000
#: A page that said hello and sent nothing for this long is closed (seconds).
IDLE_TIMEOUT = 30.0


@attrs.frozen
class ChatSettings:
    """What every session of a chat gateway enforces."""

    max_rooms_per_connection: int = MAX_ROOMS_PER_CONNECTION
    idle_timeout: float = IDLE_TIMEOUT
    jwt_secret: bytes | None = None  # None: development mode, names unauthenticated


@trouper.message
class _IdleCheck(msgspec.Struct, frozen=True):
    """Close the session if the page has been silent for too long."""


class RoomDirectory(trouper.Actor):
    """Finds the actor of each room in the cluster, or creates it on this node."""

    def __init__(
        self,
        store_url: str | None = None,
        claim_timeout: float = CLAIM_TIMEOUT,
        max_rooms: int = MAX_ROOMS_PER_NODE,
        passivate_after: float | None = PASSIVATE_AFTER,
    ) -> None:
        self.store_url = store_url  # None: the node's default store (open_node(store=))
        self.claim_timeout = claim_timeout
        self.max_rooms = max_rooms
        self.passivate_after = passivate_after
        self.hosted: set[trouper.ActorRef] = set()  # the rooms this node runs now

    async def on_start(self) -> None:
        # The node's shared store: the directory and every room of this node
        # use one connection (pool) per store URL, however many rooms there are.
        self.store: Store = await self.ctx.store(self.store_url)

    @trouper.handler
    async def room_stopped(self, msg: trouper.Terminated) -> None:
        self.hosted.discard(msg.ref)  # passivated (or its node is stopping)

    async def _create(self, room: str, name: str) -> trouper.ActorRef:
        args = (room, self.store_url, 5.0, self.passivate_after)
        ref = await self.ctx.spawn(RoomActor, *args, name=name, restart="transient")
        self.hosted.add(ref)
        self.ctx.watch(ref)
        return ref

    @trouper.handler
    async def get(self, msg: GetRoom) -> trouper.ActorRef | Refused:
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
                    if len(self.hosted) >= self.max_rooms:
                        return Refused(
                            "room_limit",
                            f"this node hosts {self.max_rooms} rooms, its limit (--max-rooms):"
                            f" room {msg.room!r} cannot be created now",
                        )
                    # Nobody alive hosts it: claim it (one claimant wins).
                    if owner == me or await self.store.compare_and_set(key, owner, me):
                        try:
                            return await self._create(msg.room, name)
                        except trouper.NameTaken:
                            pass  # passivating: its name goes after its claim
                    continue
                try:  # a live node claimed it: its room will show up
                    return await node.lookup(name, timeout=1.0)
                except trouper.ActorNotFound:
                    pass  # not yet, or its node died meanwhile: look again
        raise trouper.ActorNotFound(f"room {msg.room!r} could not be found or created")


class ChatSession(WebSocketSession):
    """One browser tab: its rooms, and the protocol rules for its frames."""

    def __init__(
        self,
        connection: WebSocketConnection,
        directory: trouper.ActorRef,
        settings: ChatSettings = ChatSettings(),
    ) -> None:
        super().__init__(connection)
        self.directory = directory
        self.settings = settings
        self.rooms: dict[str, trouper.ActorRef] = {}
        self.users: dict[str, str] = {}  # room -> the user this session is there
        self.resumes: dict[str, str] = {}  # room -> the page's resume secret there
        self.posts = 0  # sequence numbers of this session's posts
        self.identity: str | None = None  # the token's user (JWT mode)
        self.last_seen = 0.0  # trio time of the last frame
        self.keepalive = False  # the page said hello: it pings

    async def on_connect(self) -> None:
        self.last_seen = trio.current_time()
        if self.settings.jwt_secret is None:
            return
        try:
            self.identity = verify_token(token_from_scope(self.scope), self.settings.jwt_secret)
        except AuthError as exc:
            self.send_text(render_error(str(exc), "unauthorized"))
            await self.close(1008, "unauthorized")

    @trouper.handler
    async def idle_check(self, msg: _IdleCheck) -> None:
        timeout = self.settings.idle_timeout
        quiet = trio.current_time() - self.last_seen
        if quiet >= timeout:
            await self.close(1001, "idle")  # half-dead, or gone without a word
        else:
            self.ctx.send_after(timeout - quiet, _IdleCheck())

    async def _enter(self, name: str, user: str, rejoin: bool) -> Refused | None:
        """Find the room (wherever it lives), enter it and watch it. The room
        sends the "joined" frame itself (not on a rejoin)."""
        room = await self.directory.ask(GetRoom(name), timeout=CLAIM_TIMEOUT + 5)
        if isinstance(room, Refused):
            return room
        resume = self.resumes.get(name, "")
        refused: Refused | None = await room.ask(EnterRoom(user, self.ctx.self_ref, rejoin, resume))
        if refused is not None:
            return refused
        old = self.rooms.get(name)
        if old is not None and old != room:
            self.ctx.unwatch(old)
        self.rooms[name] = room
        self.users[name] = user
        self.ctx.watch(room)
        return None

    async def _post(self, name: str, frame: Say) -> None:
        self.posts += 1
        post = Post(self.ctx.self_ref, frame.text, self.posts, frame.seq)  # a retry: same seq
        for attempt in range(2):
            try:
                if attempt and await self._enter(name, self.users[name], rejoin=True):
                    break  # refused: the name went to another session meanwhile
                if await self.rooms[name].ask(post) is not None:
                    return  # delivered to everyone, us included
            except UNAVAILABLE:
                pass
        self.send_text(
            render_error(f"room {name!r} unavailable, retry", "unavailable", name, frame.seq)
        )

    async def _join(self, frame: Join) -> None:
        room, user = frame.room, frame.user
        if self.identity is not None:
            if canonical_name(user) != canonical_name(self.identity):
                reason = f"you are {self.identity!r} (your token): you cannot join as {user!r}"
                self.send_text(render_error(reason, "forbidden", room))
                return
            user = self.identity
        limit = self.settings.max_rooms_per_connection
        if room not in self.rooms and len(self.rooms) >= limit:
            reason = f"room limit: a connection may be in at most {limit} rooms; leave one first"
            self.send_text(render_error(reason, "room_limit", room))
            return
        self.resumes[room] = frame.resume
        try:
            await self._enter_as(room, user)
        finally:
            if room not in self.rooms:  # refused: keep nothing of it
                self.resumes.pop(room, None)

    async def _enter_as(self, room: str, user: str) -> None:
        """Enter ``room`` for a join, or send the error frame that says why not."""
        unavailable = closing = 0
        while unavailable < 2 and closing < CLOSING_RETRIES:
            try:
                refused = await self._enter(room, user, rejoin=False)
            except UNAVAILABLE:
                unavailable += 1
                continue
            if refused is None:
                return
            if refused.code != "closing":
                self.send_text(render_error(refused.reason, refused.code, room))
                return
            # The room is passivating: its name goes a moment after its claim,
            # and then the directory creates it again. Give it that moment.
            closing += 1
            await trio.sleep(0.05 * closing)
        self.send_text(render_error(f"room {room!r} unavailable, retry", "unavailable", room))

    def _welcome(self) -> None:
        settings = self.settings
        if not self.keepalive:
            self.keepalive = True
            self.ctx.send_after(settings.idle_timeout, _IdleCheck())
        limits = {
            "max_text_bytes": MAX_TEXT_BYTES,
            "max_rooms": settings.max_rooms_per_connection,
            "ping_interval": settings.idle_timeout / 3,
        }
        auth = "none" if settings.jwt_secret is None else "jwt"
        self.send_text(render_welcome(auth, self.identity, limits))

    async def on_text(self, text: str) -> None:
        if self.settings.jwt_secret is not None and self.identity is None:
            return  # refused at connect and closing: nothing it sends counts
        self.last_seen = trio.current_time()
        try:
            frame = parse_client_frame(text)
        except ProtocolViolation as exc:
            self.send_text(render_error(exc.reason))
            return
        me = self.ctx.self_ref
        if isinstance(frame, Join):
            await self._join(frame)
        elif isinstance(frame, Hello):
            self._welcome()
        elif isinstance(frame, Say):
            if frame.room not in self.rooms:
                reason = f"not in room {frame.room!r}: join it first"
                self.send_text(render_error(reason, "not_joined", frame.room, frame.seq))
                return
            await self._post(frame.room, frame)
        elif isinstance(frame, Leave):
            room = self.rooms.pop(frame.room, None)
            self.users.pop(frame.room, None)
            self.resumes.pop(frame.room, None)
            if room is None:
                reason = f"not in room {frame.room!r}"
                self.send_text(render_error(reason, "not_joined", frame.room))
                return
            self.ctx.unwatch(room)
            try:
                await room.ask(ExitRoom(me))
            except ROOM_GONE:
                pass  # the room is gone, and we with it

    @trouper.handler
    async def replaced(self, msg: Replaced) -> None:
        """The same page joined this room from a newer connection."""
        room = self.rooms.pop(msg.room, None)
        self.users.pop(msg.room, None)
        self.resumes.pop(msg.room, None)
        if room is not None:
            self.ctx.unwatch(room)
        reason = f"you joined room {msg.room!r} again from another connection"
        self.send_text(render_error(reason, "replaced", msg.room))

    @trouper.handler
    async def room_stopped(self, msg: trouper.Terminated) -> None:
        """A room we are in stopped (or its node went down): re-enter its successor."""
        for name, room in list(self.rooms.items()):
            if room != msg.ref or self.closing:
                continue
            try:
                refused = await self._enter(name, self.users[name], rejoin=True)
            except UNAVAILABLE:
                refused = Refused("unavailable", f"room {name!r} unavailable, retry")
            if refused is not None:
                self.rooms.pop(name, None)
                self.users.pop(name, None)
                self.resumes.pop(name, None)
                self.send_text(render_error(refused.reason, refused.code, name))

    async def on_disconnect(self, code: int) -> None:
        for room in self.rooms.values():
            try:
                room.tell_nowait(ExitRoom(self.ctx.self_ref))
            except trouper.TrouperError:
                pass  # gone already, or its link is full: it will see us stop
        self.rooms.clear()


def gateway_config(
    directory: trouper.ActorRef,
    host: str = "127.0.0.1",
    port: int = 0,
    settings: ChatSettings = ChatSettings(),
) -> WebGateway:
    """The gateway settings of the chat: 64 KiB frames, the page at ``/``."""
    return WebGateway(
        host=host,
        port=port,
        static_dir=STATIC,
        ws_path="/ws",
        max_message_size=64 * 1024,
        session=ChatSession,
        session_args=(directory, settings),
    )
