"""``RoomActor``: one chat room, its members and its history.

Sessions (one actor per WebSocket connection) talk to the room with the
messages below; the room answers a join with the history and the members,
and delivers every event without waiting, so that a slow session can never
slow the room (its gateway disconnects it instead). The history lives in a
store, so a room re-created after a crash, or on another node, starts where
the last one stopped; message ids come from the store's log, unique and
increasing within a room. Every room of a node uses the node's one shared
store for its URL (``ctx.store``): 10,000 rooms, one SQLite connection.

The room also keeps the names of its members in the store
(``chat/members/<room>``, removed when the last one leaves). A room
re-created after its node crashed or stopped reads them: members whose
sessions re-enter it (``EnterRoom(rejoin=True)``) come back without a second
"online", and those that have not re-entered after ``grace`` seconds are
announced "offline".

Every event is rendered to its JSON frame once and handed to the members'
sessions with ``trouper.web.send_text``: straight into the outboxes of the
sessions of this node, one message to each other node's gateway. The
"joined" answer goes the same way, so it always comes before the room's next
events.

A ``Post`` carries the session's sequence number: a post retried after its
reply was lost (the room's node died) is recognised from the stored history
and delivered again with its first id, never stored twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import msgspec

import trouper
import trouper.web
from trouper.stores import Store

from ._protocol import HISTORY, ChatMessage, Joined, Presence, render

log = logging.getLogger("examples.chat")


@trouper.message
class EnterRoom(msgspec.Struct, frozen=True):
    user: str
    session: trouper.ActorRef
    rejoin: bool = False  # re-entering a room re-created after a failure


@trouper.message
class Post(msgspec.Struct, frozen=True):
    session: trouper.ActorRef
    text: str
    seq: int = 0  # per session: a retried post has the same one


@trouper.message
class ExitRoom(msgspec.Struct, frozen=True):
    session: trouper.ActorRef


@trouper.message
class _GraceOver(msgspec.Struct, frozen=True):
    """Members of the previous incarnation that did not re-enter are offline."""


class _Stored(msgspec.Struct, array_like=True):
    """A message as its room's log keeps it (the id is the log's own)."""

    user: str
    ts: float
    text: str
    key: str = ""  # the post's session and sequence number (see _post_key)


def _post_key(msg: Post) -> str:
    session = msg.session
    return f"{session.node_id}{session.path}#{session.uid}:{msg.seq}"


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Stored).decode
_decode_names = msgspec.msgpack.Decoder(list[str]).decode


class RoomActor(trouper.Actor):
    def __init__(self, room: str, store_url: str | None = None, grace: float = 5.0) -> None:
        self.room = room
        self.store_url = store_url  # None: the node's default store
        self.grace = grace
        self.log_name = f"chat/{room}"
        self.members_key = f"chat/members/{room}"
        #: Users of the previous incarnation that have not re-entered yet.
        self.previous: set[str] = set()
        self._saved: list[str] = []
        self.members: dict[trouper.ActorRef, str] = {}
        self.history: deque[ChatMessage] = deque(maxlen=HISTORY)
        #: The messages in ``history`` by post key, for retried posts.
        self.keys: dict[str, ChatMessage] = {}
        self._history_keys: deque[str] = deque(maxlen=HISTORY)  # parallel to history
        self.dropped = 0

    async def on_start(self) -> None:
        self.store: Store = await self.ctx.store(self.store_url)
        for id_, record in await self.store.tail(self.log_name, HISTORY):
            stored = _decode(record)
            message = ChatMessage(self.room, id_, stored.user, stored.ts, stored.text)
            self._remember(message, stored.key)
        saved = await self.store.get(self.members_key)
        if saved:
            self.previous = set(_decode_names(saved))
            self._saved = sorted(self.previous)
            self.ctx.send_after(self.grace, _GraceOver())

    async def on_stop(self) -> None:
        # The members stay saved: a room stops when its node does, and its
        # successor on another node must know who was in (a clean stop is no
        # different from a crash for the sessions that re-enter). The node
        # closes its shared store only after every room has stopped.
        await self._save_members()

    async def _save_members(self) -> None:
        """Record who is in the room, for a successor on another node."""
        names = sorted(set(self.members.values()) | self.previous)
        if names == self._saved:
            return
        self._saved = names
        if names:
            await self.store.put(self.members_key, _encode(names))
        else:
            await self.store.delete(self.members_key)

    def _online(self) -> list[str]:
        return sorted(set(self.members.values()))

    def _remember(self, message: ChatMessage, key: str) -> None:
        if len(self.history) == HISTORY:
            self.keys.pop(self._history_keys[0], None)  # about to fall out of history
        self.history.append(message)
        self._history_keys.append(key)
        if key:
            self.keys[key] = message

    def _deliver(
        self, event: ChatMessage | Presence | Joined, to: list[trouper.ActorRef] | None = None
    ) -> None:
        sent = trouper.web.send_text(self.members if to is None else to, render(event))
        if sent.dropped:
            self.dropped += sent.dropped
            log.warning(
                "room %s: %d sessions not keeping up; event dropped", self.room, sent.dropped
            )

    @trouper.handler
    async def enter(self, msg: EnterRoom) -> None:
        """Answered with the "joined" frame to the session (not on a rejoin)."""
        first = msg.user not in self.members.values()
        others = [session for session in self.members if session != msg.session]
        if msg.session not in self.members:
            self.ctx.watch(msg.session)
        self.members[msg.session] = msg.user
        returning = msg.rejoin and msg.user in self.previous
        self.previous.discard(msg.user)
        if not msg.rejoin:
            self._deliver(Joined(self.room, list(self.history), self._online()), [msg.session])
        if first and not returning:
            self._deliver(Presence(self.room, msg.user, "online"), others)
        await self._save_members()

    @trouper.handler
    async def grace_over(self, msg: _GraceOver) -> None:
        gone, self.previous = self.previous, set()
        for user in sorted(gone - set(self.members.values())):
            self._deliver(Presence(self.room, user, "offline"))
        await self._save_members()

    @trouper.handler
    async def post(self, msg: Post) -> int | None:
        """Store and deliver; answers the message's id (None: not a member)."""
        user = self.members.get(msg.session)
        if user is None:
            return None  # the session checks membership; a late post is moot
        key = _post_key(msg)
        message = self.keys.get(key)
        if message is None:
            ts = time.time()
            stored = _Stored(user, ts, msg.text, key)
            id_ = await self.store.append(self.log_name, _encode(stored))
            message = ChatMessage(self.room, id_, user, ts, msg.text)
            self._remember(message, key)
            if id_ % HISTORY == 0:
                await self.store.trim(self.log_name, HISTORY)
        # A retried post is delivered again with its first id: members that got
        # it before the room's node died can tell it by that id.
        self._deliver(message)
        return message.id

    async def _remove(self, session: trouper.ActorRef) -> None:
        user = self.members.pop(session, None)
        if user is not None and user not in self.members.values():
            self._deliver(Presence(self.room, user, "offline"))
            await self._save_members()

    @trouper.handler
    async def exit(self, msg: ExitRoom) -> None:
        if msg.session in self.members:
            self.ctx.unwatch(msg.session)
            await self._remove(msg.session)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        await self._remove(msg.ref)
