"""Hubs: one ``DocHub`` per open document per node, under the node's
``HubRegistry`` (named ``collab-hubs``).

A hub holds ONE ``Subscribe`` stream from the document's ``DocumentActor``,
wherever in the cluster it runs, and fans each ``DocEvent`` out to this
node's sessions of that document with ``trouper.web.send_bytes``: the Yjs
message is encoded once and written into every socket without waking the
sessions' actors. So a document edited by 50 people on 3 nodes costs its
owner 3 subscriptions, not 50.

- "update": to every local session but the one it came from (its origin);
- "awareness": to every local session (a y-websocket client counts its own
  awareness coming back as a sign of life);
- "resync" (the hub resubscribed after the owner moved, or the owner found
  this hub too far behind): the full state as an Update, then a SyncStep1
  with the owner's state vector, to every local session: each client
  answers with a SyncStep2 of what the new owner lacks (its edits that died
  with the old owner), which its session applies.

When the stream fails (the owner's node died, the document passivated) the
hub asks the directory again, which re-creates the document on a live node
from the store, and resubscribes, with a bounded backoff. The registry
keeps the membership: it spawns a hub for the first session of a document,
watches the sessions, and stops the hub when its last session is gone.
"""

# No ``from __future__ import annotations``: handler annotations must be classes.
import logging
import random

import msgspec
import trio

import trouper
from trouper.web import send_bytes

from . import _wire
from .sync._messages import DIRECTORY_NAME, DocEvent, OpenDocument, Subscribe

log = logging.getLogger("examples.collab.hub")

#: The name of each node's hub registry.
HUB_REGISTRY_NAME = "collab-hubs"
#: Errors that mean "the document's actor (or its node) is gone": re-resolve it.
DOC_GONE = (
    trouper.ActorDead,
    trouper.NodeDown,
    trouper.ConnectionLost,
    trouper.AskTimeout,
    trouper.ActorNotFound,
    trouper.RemoteError,
    trouper.SpawnRefused,
)
#: The events the owner may queue for this hub before coalescing (Subscribe.queue).
SUBSCRIBE_QUEUE = 256
#: Stream credit: events in flight between the owner and the hub.
STREAM_WINDOW = 64
#: Resubscription backoff: first delay, cap (seconds); doubled each failure, jittered.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
#: How long one OpenDocument may take (the directory's own claim is bounded too).
OPEN_TIMEOUT = 20.0
#: Documents one node keeps hubs for (a hub per document with a local session):
#: a join past it is refused, naming the limit.
MAX_HUBS_PER_NODE = 10_000
#: Sessions one hub fans out to: one more is refused, naming the limit.
MAX_SESSIONS_PER_HUB = 1_000


@trouper.message(name="collab:JoinHub")
class JoinHub(msgspec.Struct, frozen=True):
    """To the registry: ``session`` (connection ``origin``) edits ``doc`` on
    this node. Replies with the hub's ref, or raises ``trouper.InvalidArgument``
    naming a limit."""

    doc: str
    session: trouper.ActorRef
    origin: str


@trouper.message(name="collab:LeaveHub")
class LeaveHub(msgspec.Struct, frozen=True):
    doc: str
    session: trouper.ActorRef


@trouper.message(name="collab:Attach")
class Attach(msgspec.Struct, frozen=True):
    session: trouper.ActorRef
    origin: str


@trouper.message(name="collab:Detach")
class Detach(msgspec.Struct, frozen=True):
    session: trouper.ActorRef


@trouper.message(name="collab:WaitSubscribed")
class WaitSubscribed(msgspec.Struct, frozen=True):
    """Answered (None) once the hub's stream is open, so a session that syncs
    after it misses no update in between."""


@trouper.message(name="collab:GetHub")
class GetHub(msgspec.Struct, frozen=True):
    """Asked of the registry: the hub of ``doc`` on this node, or None."""

    doc: str


@trouper.message(name="collab:HubInfo")
class HubInfo(msgspec.Struct, frozen=True):
    """Asked of the registry: {doc: number of local sessions}; of a hub: its
    subscriptions so far (tests watch failover with it)."""


class DocHub(trouper.Actor):
    """The fan-out of one document on this node."""

    def __init__(
        self, doc: str, sessions: dict[trouper.ActorRef, str] | None = None, replacing: bool = False
    ) -> None:
        self.doc = doc
        self.sessions = dict(sessions or {})  # session -> its origin
        self.by_origin = {origin: session for session, origin in self.sessions.items()}
        self.subscribed = trio.Event()
        if replacing:  # its sessions synced long ago: they need the first resync too
            self.subscribed.set()
        self.subscriptions = 0  # streams opened so far: >1 means a resubscription

    async def on_start(self) -> None:
        self.ctx.start_soon(self._follow)

    @trouper.handler
    async def attach(self, msg: Attach) -> None:
        self.sessions[msg.session] = msg.origin
        self.by_origin[msg.origin] = msg.session

    @trouper.handler
    async def detach(self, msg: Detach) -> None:
        origin = self.sessions.pop(msg.session, None)
        if origin is not None:
            self.by_origin.pop(origin, None)

    @trouper.handler
    async def wait_subscribed(self, msg: WaitSubscribed) -> None:
        await self.subscribed.wait()

    @trouper.handler
    async def info(self, msg: HubInfo) -> int:
        return self.subscriptions

    async def _follow(self) -> None:
        """Keep one subscription to the document open, for as long as the hub lives."""
        node = self.ctx.node
        me = f"hub/{node.id}/{self.doc}"
        failures = 0
        while True:
            try:
                directory = await node.lookup(DIRECTORY_NAME, timeout=OPEN_TIMEOUT)
                owner = await directory.ask(OpenDocument(self.doc), timeout=OPEN_TIMEOUT)
                async with owner.stream(
                    Subscribe(me, SUBSCRIBE_QUEUE), window=STREAM_WINDOW
                ) as events:
                    self.subscriptions += 1
                    async for event in events:
                        failures = 0
                        if event.kind == "resync" and not self.subscribed.is_set():
                            # The sessions attached so far wait for this, then
                            # sync themselves: the full state is not for them.
                            self.subscribed.set()
                            continue
                        self._fan_out(event)
                log.info("hub %s: the stream of %s ended; resubscribing", me, self.doc)
            except trouper.TrouperError as exc:  # gone, refused, or a bad answer: retry
                log.info("hub %s: %s is unavailable (%s); resubscribing", me, self.doc, exc)
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**failures)
            failures += 1
            await trio.sleep(delay * random.uniform(0.5, 1.0))  # a backoff, not a sync

    def _fan_out(self, event: DocEvent) -> None:
        if not self.sessions:
            return
        if event.kind == "update":
            origin = self.by_origin.get(event.origin)
            targets = [s for s in self.sessions if s != origin]
            send_bytes(targets, _wire.encode_update(event.data))
        elif event.kind == "awareness":
            send_bytes(self.sessions, _wire.encode_awareness(event.data))
        else:  # "resync": each client sends back what the owner lacks
            send_bytes(self.sessions, _wire.encode_update(event.data))
            send_bytes(self.sessions, _wire.encode_sync_step1(event.state_vector))


class HubRegistry(trouper.Actor):
    """This node's hubs: one per document with a local session."""

    def __init__(
        self, max_hubs: int = MAX_HUBS_PER_NODE, max_sessions: int = MAX_SESSIONS_PER_HUB
    ) -> None:
        self.max_hubs = max_hubs
        self.max_sessions = max_sessions
        self.hubs: dict[str, trouper.ActorRef] = {}
        self.doc_of_hub: dict[trouper.ActorRef, str] = {}
        self.members: dict[str, dict[trouper.ActorRef, str]] = {}  # doc -> {session: origin}
        self.docs_of: dict[trouper.ActorRef, set[str]] = {}  # session -> its documents

    async def _spawn(self, doc: str, replacing: bool) -> trouper.ActorRef:
        # Not restarted by the supervisor (a fresh instance would forget its
        # sessions): the registry replaces a hub that stopped on its own.
        members = self.members.get(doc, {})
        hub = await self.ctx.spawn(DocHub, doc, members, replacing, restart="temporary")
        self.ctx.watch(hub)
        self.hubs[doc] = hub
        self.doc_of_hub[hub] = doc
        return hub

    @trouper.handler
    async def join(self, msg: JoinHub) -> trouper.ActorRef:
        hub = self.hubs.get(msg.doc)
        if hub is None:
            if len(self.hubs) >= self.max_hubs:
                raise trouper.InvalidArgument(
                    f"this node has hubs for {self.max_hubs} documents, its limit:"
                    f" document {msg.doc!r} cannot be opened here now"
                )
            self.members[msg.doc] = {}
            hub = await self._spawn(msg.doc, replacing=False)
        members = self.members[msg.doc]
        if msg.session not in members and len(members) >= self.max_sessions:
            raise trouper.InvalidArgument(
                f"document {msg.doc!r} has {self.max_sessions} sessions on this node, its limit"
            )
        members[msg.session] = msg.origin
        if msg.session not in self.docs_of:
            self.docs_of[msg.session] = set()
            self.ctx.watch(msg.session)
        self.docs_of[msg.session].add(msg.doc)
        await hub.tell(Attach(msg.session, msg.origin))
        return hub

    @trouper.handler
    async def leave(self, msg: LeaveHub) -> None:
        await self._leave(msg.doc, msg.session)

    @trouper.handler
    async def stopped(self, msg: trouper.Terminated) -> None:
        doc = self.doc_of_hub.pop(msg.ref, None)
        if doc is not None:  # a hub: replaced if it still has sessions
            if self.hubs.get(doc) == msg.ref and self.members.get(doc):
                log.warning("hub of %s stopped (%s): replacing it", doc, msg.reason)
                await self._spawn(doc, replacing=True)
            return
        for doc in list(self.docs_of.get(msg.ref, ())):  # a session
            await self._leave(doc, msg.ref)

    @trouper.handler
    async def get_hub(self, msg: GetHub) -> trouper.ActorRef | None:
        return self.hubs.get(msg.doc)

    @trouper.handler
    async def info(self, msg: HubInfo) -> dict[str, int]:
        return {doc: len(members) for doc, members in self.members.items()}

    async def _leave(self, doc: str, session: trouper.ActorRef) -> None:
        docs = self.docs_of.get(session)
        if docs is not None:
            docs.discard(doc)
            if not docs:
                del self.docs_of[session]
                self.ctx.unwatch(session)
        members = self.members.get(doc)
        if members is None or session not in members:
            return
        del members[session]
        hub = self.hubs[doc]
        if members:
            await hub.tell(Detach(session))
            return
        del self.members[doc], self.hubs[doc], self.doc_of_hub[hub]
        self.ctx.unwatch(hub)
        self.ctx.stop(hub)  # its last session left: its subscription goes with it
