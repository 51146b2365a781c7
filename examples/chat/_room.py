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
and delivered again with its first id, never stored twice. A post with the
client's own sequence number (``client_seq``) is keyed by (user, seq)
instead, so a message the page resends after a reconnect, from a new
session, is recognised too. The room remembers the last ``DEDUPE_WINDOW``
keys (after a restart, those of the history it reloads).

A user name is claimed per room, in its canonical form
(``canonical_name``): one live session per name. Names of the previous
incarnation's members stay reserved for their re-entering sessions until
``grace`` is over. A join with the resume secret of the name's holder (the
same browser tab, reconnected while its old session still looks alive) takes
the name over at once: the old session is told ``Replaced``, and the others
see no presence change.

A room with no members for ``passivate_after`` seconds stops (it is
spawned ``restart="transient"``) and gives up its claim in the store, so its
node does not keep every room ever joined; the next join re-creates it
from the store.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque

import msgspec

import trouper
import trouper.web
from trouper.stores import Store

from ._claims import NameClaims
from ._protocol import HISTORY, ChatMessage, Joined, Presence, canonical_name, render

log = logging.getLogger("examples.chat")

#: How many (user, seq) keys a room remembers to recognise a resent message.
DEDUPE_WINDOW = 1000
#: A room with no members for this long stops (seconds).
PASSIVATE_AFTER = 60.0


@trouper.message
class EnterRoom(msgspec.Struct, frozen=True):
    user: str
    session: trouper.ActorRef
    rejoin: bool = False  # re-entering a room re-created after a failure
    resume: str = ""  # the page's secret: a session with the same one may take the name over


@trouper.message
class Replaced(msgspec.Struct, frozen=True):
    """Told to a session whose name in ``room`` a newer session of the same
    page (same resume secret) took over: it is no longer in the room."""

    room: str


@trouper.message
class Refused(msgspec.Struct, frozen=True):
    """The answer to an ``EnterRoom`` that the room refuses."""

    code: str  # "name_taken" | "closing"
    reason: str


@trouper.message
class Post(msgspec.Struct, frozen=True):
    session: trouper.ActorRef
    text: str
    seq: int = 0  # per session: a retried post has the same one
    client_seq: int = 0  # the page's own number: a resend from a new session has it too


@trouper.message
class ExitRoom(msgspec.Struct, frozen=True):
    session: trouper.ActorRef


@trouper.message
class _GraceOver(msgspec.Struct, frozen=True):
    """Members of the previous incarnation that did not re-enter are offline."""


@trouper.message
class _IdleCheck(msgspec.Struct, frozen=True):
    """Passivate if nothing changed since this check was scheduled."""

    token: int


class _Stored(msgspec.Struct, array_like=True):
    """A message as its room's log keeps it (the id is the log's own)."""

    user: str
    ts: float
    text: str
    key: str = ""  # the post's session and sequence number (see _post_key)


def _post_key(msg: Post, user: str) -> str:
    if msg.client_seq:
        return f"user:{canonical_name(user)}:{msg.client_seq}"
    session = msg.session
    return f"{session.node_id}{session.path}#{session.uid}:{msg.seq}"


def _client_seq(key: str) -> int:
    """The client sequence number inside a stored post key (0: none)."""
    if not key.startswith("user:"):
        return 0
    return int(key.rpartition(":")[2])


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Stored).decode
_decode_names = msgspec.msgpack.Decoder(list[str]).decode


class RoomActor(trouper.Actor):
    def __init__(
        self,
        room: str,
        store_url: str | None = None,
        grace: float = 5.0,
        passivate_after: float | None = PASSIVATE_AFTER,
    ) -> None:
        self.room = room
        self.store_url = store_url  # None: the node's default store
        self.grace = grace
        self.passivate_after = passivate_after  # None: never
        self.log_name = f"chat/{room}"
        self.members_key = f"chat/members/{room}"
        self.owner_key = f"chat/owner/{room}"  # the directory's claim (see _server)
        self.names: NameClaims[trouper.ActorRef] = NameClaims()  # one session per name
        self.passivating = False
        self._idle_token = 0
        #: Users of the previous incarnation that have not re-entered yet.
        self.previous: set[str] = set()
        self._saved: list[str] = []
        self.members: dict[trouper.ActorRef, str] = {}
        self.history: deque[ChatMessage] = deque(maxlen=HISTORY)
        #: The last DEDUPE_WINDOW messages by post key, for retried posts.
        self.keys: OrderedDict[str, ChatMessage] = OrderedDict()
        self.dropped = 0

    async def on_start(self) -> None:
        self.store: Store = await self.ctx.store(self.store_url)
        for id_, record in await self.store.tail(self.log_name, HISTORY):
            stored = _decode(record)
            seq = _client_seq(stored.key)
            message = ChatMessage(self.room, id_, stored.user, stored.ts, stored.text, seq)
            self._remember(message, stored.key)
        saved = await self.store.get(self.members_key)
        if saved:
            self.previous = set(_decode_names(saved))
            self._saved = sorted(self.previous)
            self.ctx.send_after(self.grace, _GraceOver())
        self._idle_soon()  # a room whose first join was refused must not stay

    async def on_stop(self) -> None:
        # The members stay saved: a room stops when its node does, and its
        # successor on another node must know who was in (a clean stop is no
        # different from a crash for the sessions that re-enter). The node
        # closes its shared store only after every room has stopped.
        await self._save_members()
        if self.passivating:
            # Give up the claim before the name is unregistered: a directory
            # that misses the name then finds no claim either, and re-creates it.
            me = self.ctx.node.id.encode()
            await self.store.compare_and_set(self.owner_key, me, None)

    def _idle_soon(self) -> None:
        """Passivate after a quiet period, unless membership changes first."""
        self._idle_token += 1
        if self.passivate_after is not None and not self.members and not self.previous:
            self.ctx.send_after(self.passivate_after, _IdleCheck(self._idle_token))

    @trouper.handler
    async def idle_check(self, msg: _IdleCheck) -> None:
        if msg.token == self._idle_token and not self.members and not self.previous:
            log.info("room %s: no members for %ss; passivating", self.room, self.passivate_after)
            self.passivating = True
            self.ctx.stop()

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
        self.history.append(message)
        if key:
            self.keys[key] = message
            if len(self.keys) > DEDUPE_WINDOW:
                self.keys.popitem(last=False)

    def _deliver(
        self, event: ChatMessage | Presence | Joined, to: list[trouper.ActorRef] | None = None
    ) -> None:
        sent = trouper.web.send_text(self.members if to is None else to, render(event))
        if sent.dropped:
            self.dropped += sent.dropped
            log.warning(
                "room %s: %d sessions not keeping up; event dropped", self.room, sent.dropped
            )

    def _refusal(self, msg: EnterRoom) -> Refused | None:
        if self.passivating:
            return Refused("closing", f"room {self.room!r} is closing, retry")
        if not self.names.may_claim(msg.user, msg.session, msg.resume):
            return Refused("name_taken", f"the name {msg.user!r} is taken in room {self.room!r}")
        name = canonical_name(msg.user)
        if not msg.rejoin and name in {canonical_name(user) for user in self.previous}:
            # Reserved for its member's session, re-entering after a failover.
            return Refused("name_taken", f"the name {msg.user!r} is taken in room {self.room!r}")
        return None

    def _drop_replaced(self, holder: trouper.ActorRef) -> None:
        """The name's previous holder (same tab, older connection) is out."""
        self.ctx.unwatch(holder)
        self.members.pop(holder, None)
        try:
            holder.tell_nowait(Replaced(self.room))
        except trouper.TrouperError:
            pass  # gone already (half-dead sessions often are, by now)

    @trouper.handler
    async def enter(self, msg: EnterRoom) -> Refused | None:
        """Answered with the "joined" frame to the session (not on a rejoin),
        or refused: the name is another live session's."""
        refused = self._refusal(msg)
        if refused is not None:
            return refused
        old = self.members.get(msg.session)
        if old is not None and old != msg.user:  # the session changes its name here
            self.ctx.unwatch(msg.session)
            await self._remove(msg.session)
        replaced = self.names.claim(msg.user, msg.session, msg.resume)
        if replaced is not None:
            self._drop_replaced(replaced)
        first = msg.user not in self.members.values() and replaced is None
        others = [session for session in self.members if session != msg.session]
        if msg.session not in self.members:
            self.ctx.watch(msg.session)
        self.members[msg.session] = msg.user
        self._idle_soon()
        returning = msg.rejoin and msg.user in self.previous
        self.previous.discard(msg.user)
        if not msg.rejoin:
            self._deliver(Joined(self.room, list(self.history), self._online()), [msg.session])
        if first and not returning:
            self._deliver(Presence(self.room, msg.user, "online"), others)
        await self._save_members()
        return None

    @trouper.handler
    async def grace_over(self, msg: _GraceOver) -> None:
        gone, self.previous = self.previous, set()
        for user in sorted(gone - set(self.members.values())):
            self._deliver(Presence(self.room, user, "offline"))
        await self._save_members()
        self._idle_soon()

    @trouper.handler
    async def post(self, msg: Post) -> int | None:
        """Store and deliver; answers the message's id (None: not a member)."""
        user = self.members.get(msg.session)
        if user is None:
            return None  # the session checks membership; a late post is moot
        key = _post_key(msg, user)
        message = self.keys.get(key)
        if message is None:
            ts = time.time()
            stored = _Stored(user, ts, msg.text, key)
            id_ = await self.store.append(self.log_name, _encode(stored))
            message = ChatMessage(self.room, id_, user, ts, msg.text, msg.client_seq)
            self._remember(message, key)
            if id_ % HISTORY == 0:
                await self.store.trim(self.log_name, HISTORY)
        # A retried post is delivered again with its first id: members that got
        # it before the room's node died can tell it by that id.
        self._deliver(message)
        return message.id

    async def _remove(self, session: trouper.ActorRef) -> None:
        user = self.members.pop(session, None)
        if user is None:
            return
        self.names.release(user, session)  # free for a reconnect
        self._idle_soon()
        if user not in self.members.values():
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
