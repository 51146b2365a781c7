"""``RoomActor``: one chat room, its members and its history.

Sessions (one actor per WebSocket connection) talk to the room with the
messages below; the room answers a join with the history and the members,
and delivers every event to its sessions with ``tell_nowait`` so that a slow
session can never slow the room (its gateway disconnects it instead). The
history lives in a store, so a room re-created after a crash, or on another
node, starts where the last one stopped; message ids come from the store's
log, unique and increasing within a room.

The room also keeps the names of its members in the store
(``chat/members/<room>``, cleared when it stops cleanly). A room re-created
after its node crashed reads them: members whose sessions re-enter it
(``EnterRoom(rejoin=True)``) come back without a second "online", and those
that have not re-entered after ``grace`` seconds are announced "offline".
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import AsyncExitStack

import msgspec

import trouper
from trouper.stores import Store, open_store

from ._protocol import HISTORY, ChatMessage, Joined, Presence

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


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Stored).decode
_decode_names = msgspec.msgpack.Decoder(list[str]).decode


class RoomActor(trouper.Actor):
    def __init__(self, room: str, store_url: str, grace: float = 5.0) -> None:
        self.room = room
        self.store_url = store_url
        self.grace = grace
        self.log_name = f"chat/{room}"
        self.members_key = f"chat/members/{room}"
        #: Users of a previous incarnation that ended without a clean stop.
        self.previous: set[str] = set()
        self._saved: list[str] = []
        self.members: dict[trouper.ActorRef, str] = {}
        self.history: deque[ChatMessage] = deque(maxlen=HISTORY)
        self.dropped = 0

    async def on_start(self) -> None:
        self._stack = AsyncExitStack()
        self.store: Store = await self._stack.enter_async_context(open_store(self.store_url))
        for id_, record in await self.store.tail(self.log_name, HISTORY):
            stored = _decode(record)
            self.history.append(ChatMessage(self.room, id_, stored.user, stored.ts, stored.text))
        saved = await self.store.get(self.members_key)
        if saved:
            self.previous = set(_decode_names(saved))
            self._saved = sorted(self.previous)
            self.ctx.send_after(self.grace, _GraceOver())

    async def on_stop(self) -> None:
        try:
            self.members.clear()
            self.previous.clear()
            await self._save_members()
        finally:
            await self._stack.aclose()

    async def _save_members(self) -> None:
        """Record who is in the room, for a successor after a crash."""
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

    def _deliver(self, event: ChatMessage | Presence, skip: trouper.ActorRef | None = None) -> None:
        for session in list(self.members):
            if session == skip:
                continue
            try:
                session.tell_nowait(event)
            except trouper.MailboxFull:
                self.dropped += 1
                log.warning("room %s: %s is not keeping up; event dropped", self.room, session)

    @trouper.handler
    async def enter(self, msg: EnterRoom) -> Joined:
        first = msg.user not in self.members.values()
        if msg.session not in self.members:
            self.ctx.watch(msg.session)
        self.members[msg.session] = msg.user
        returning = msg.rejoin and msg.user in self.previous
        self.previous.discard(msg.user)
        if first and not returning:
            self._deliver(Presence(self.room, msg.user, "online"), skip=msg.session)
        await self._save_members()
        return Joined(self.room, list(self.history), self._online())

    @trouper.handler
    async def grace_over(self, msg: _GraceOver) -> None:
        gone, self.previous = self.previous, set()
        for user in sorted(gone - set(self.members.values())):
            self._deliver(Presence(self.room, user, "offline"))
        await self._save_members()

    @trouper.handler
    async def post(self, msg: Post) -> ChatMessage | None:
        user = self.members.get(msg.session)
        if user is None:
            return None  # the session checks membership; a late post is moot
        ts = time.time()
        id_ = await self.store.append(self.log_name, _encode(_Stored(user, ts, msg.text)))
        message = ChatMessage(self.room, id_, user, ts, msg.text)
        self.history.append(message)
        if id_ % HISTORY == 0:
            await self.store.trim(self.log_name, HISTORY)
        self._deliver(message)
        return message

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
