"""The WebSocket edge: one ``CollabSession`` actor per connection to
``/ws?doc=<id>&user=<name>``, speaking the standard Yjs protocol
(y-websocket's: ``_wire``) to the browser, and trouper messages to the
document's ``DocumentActor`` wherever it runs.

- On connect: the document is opened through this node's directory
  (``OpenDocument`` to ``collab-docs``), the session joins this node's hub
  of the document (``_hub``: it will push the other editors' updates and
  awareness), and is sent the server's SyncStep1 (the document's state
  vector: the client answers with what the server lacks), then every known
  awareness state, as y-websocket's server does. The client's own SyncStep1
  is answered with a SyncStep2: only what it lacks.
- A SyncStep2 or Update from the client is ``ApplyUpdate(origin=<this
  connection>)``, one at a time and in order; the next frame is read only
  once the owner acknowledged (stored) the previous one. When the owner died
  meanwhile, the document is resolved again (the directory re-creates it on
  a live node from the store) and the same update is retried: applying it
  twice is harmless in Yjs.
- Awareness goes to the owner (``ApplyAwareness``); on disconnect the
  owner forgets this connection's states (``DropOrigin``).
- Each connection holds a session of the session service (``_presence``),
  so the locks it takes die with it.

A frame the edge refuses closes that connection only, with a code and a
reason naming the problem: 1003 (a text frame, a type it does not speak),
1007 (bytes that do not decode, an update pycrdt refuses), 1008 (a bad
query, a broken bound), 1009 (over ``MAX_MESSAGE_BYTES``, from the gateway).
"""

# No ``from __future__ import annotations``: handler annotations must be classes.
import logging
import re
import uuid
from urllib.parse import parse_qs

import attrs
import msgspec
import trio

import trouper
from trouper.web import WebSocketConnection, WebSocketSession

from . import _wire
from ._hub import DOC_GONE, HUB_REGISTRY_NAME, OPEN_TIMEOUT, JoinHub, LeaveHub, WaitSubscribed
from ._presence import SessionLink
from .sync._messages import (
    DIRECTORY_NAME,
    ApplyAwareness,
    ApplyUpdate,
    DropOrigin,
    GetAwareness,
    Joined,
    JoinState,
    OpenDocument,
    SyncReply,
    SyncRequest,
)

log = logging.getLogger("examples.collab.edge")

#: One WebSocket message from a client: a real document's first SyncStep2
#: (an offline client's whole state) fits; more closes the connection (1009).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: A document id (the state-sync directory checks the same format).
DOC_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: A user name: 1 to this many characters, no control characters.
MAX_USER_CHARS = 64
#: How long an update (or sync) is retried while the document's owner is gone
#: (its node must first be declared down, then the document re-created): past
#: it, the connection closes with 1013 and the client reconnects and resyncs.
RETRY_FOR = 30.0
#: The longest wait between two of those attempts (seconds; doubled from 0.05).
RETRY_MAX_DELAY = 1.0
#: How long an ask of the owner may take (a SyncStep2 of a big document included).
OWNER_TIMEOUT = 15.0
#: Seconds between two keepalive frames: y-websocket's client reconnects
#: after 30 s without a message.
KEEPALIVE_INTERVAL = 10.0
#: Close codes beyond _wire's.
TRY_AGAIN_LATER = 1013
#: A close reason is at most 123 bytes of UTF-8 (RFC 6455).
MAX_REASON_BYTES = 123


@attrs.frozen
class EdgeSettings:
    """What every session of a collab gateway does."""

    keepalive_interval: float = KEEPALIVE_INTERVAL
    #: Hold a session of the session service per connection (its locks die with it).
    sessions: bool = True
    session_ttl: float | None = None  # None: the service's default


@trouper.message(name="collab:Keepalive")
class _Keepalive(msgspec.Struct, frozen=True):
    pass


@trouper.message(name="collab:Heartbeat")
class _Heartbeat(msgspec.Struct, frozen=True):
    pass


def _reason(text: str) -> str:
    raw = text.encode()
    if len(raw) <= MAX_REASON_BYTES:
        return text
    return raw[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def parse_query(query_string: bytes) -> tuple[str, str]:
    """``doc`` and ``user`` of the connection's query, or ``_wire.WireError``."""
    try:
        query = parse_qs(query_string.decode(), strict_parsing=False)
    except UnicodeDecodeError:
        raise _wire.WireError(_wire.POLICY, "the query is not UTF-8") from None
    doc = query.get("doc", [""])[0]
    user = query.get("user", [""])[0].strip()
    if not DOC_ID.fullmatch(doc):
        raise _wire.WireError(
            _wire.POLICY, "?doc= must be 1 to 128 of A-Z a-z 0-9 . _ - (the document id)"
        )
    if not user or len(user) > MAX_USER_CHARS or not user.isprintable():
        raise _wire.WireError(
            _wire.POLICY, f"?user= must be 1 to {MAX_USER_CHARS} printable characters"
        )
    return doc, user


class CollabSession(WebSocketSession):
    """One editor's connection to one document."""

    # A dropped update would leave this client's document wrong without its
    # knowing: close it at once instead, and it resyncs when it reconnects
    # (its SyncStep1 brings only what it missed).
    close_on_drop = True

    def __init__(
        self, connection: WebSocketConnection, settings: EdgeSettings = EdgeSettings()
    ) -> None:
        super().__init__(connection)
        self.settings = settings
        self.doc = ""
        self.user = ""
        self.origin = ""
        self.owner: trouper.ActorRef | None = None
        self.registry: trouper.ActorRef | None = None
        self.session: SessionLink | None = None
        #: Updates applied (acknowledged by the owner) from this connection.
        self.applied = 0

    async def _refuse(self, code: int, reason: str) -> None:
        log.info("collab connection %s refused: %s (%d)", self.origin or "?", reason, code)
        await self.close(code, _reason(reason))

    async def on_connect(self) -> None:
        node = self.ctx.node
        self.origin = f"{node.id}/{uuid.uuid4().hex[:16]}"
        try:
            self.doc, self.user = parse_query(self.scope.get("query_string", b""))
        except _wire.WireError as exc:
            await self._refuse(exc.code, exc.reason)
            return
        try:
            self.owner = await self._open()
            self.registry = await node.lookup(HUB_REGISTRY_NAME)
            hub = await self.registry.ask(JoinHub(self.doc, self.ctx.self_ref, self.origin))
            await hub.ask(WaitSubscribed(), timeout=OPEN_TIMEOUT)
            joined = await self._owner_ask(JoinState())
        except trouper.InvalidArgument as exc:  # a limit, named
            await self._refuse(_wire.POLICY, str(exc))
            return
        except trouper.TrouperError as exc:
            log.warning("collab: document %s unavailable: %s", self.doc, exc)
            await self._refuse(TRY_AGAIN_LATER, f"document {self.doc!r} unavailable, retry")
            return
        assert isinstance(joined, Joined)
        # As y-websocket's server: our SyncStep1 first (the client answers
        # with what we lack), then everyone's awareness.
        self.send_bytes(_wire.encode_sync_step1(joined.state_vector))
        if joined.awareness not in (b"", b"\x00"):
            self.send_bytes(_wire.encode_awareness(joined.awareness))
        self.ctx.every(self.settings.keepalive_interval, _Keepalive())
        if self.settings.sessions:
            self.session = SessionLink(node, self.user, self.origin, self.settings.session_ttl)
            interval = await self.session.create()
            if interval is not None:
                self.ctx.every(interval, _Heartbeat())

    async def _open(self) -> trouper.ActorRef:
        directory = await self.ctx.node.lookup(DIRECTORY_NAME, timeout=OPEN_TIMEOUT)
        ref: trouper.ActorRef = await directory.ask(OpenDocument(self.doc), timeout=OPEN_TIMEOUT)
        return ref

    async def _owner_ask(self, msg: object) -> object:
        """Ask the document's owner; when it is gone, find its successor and retry."""
        delay = 0.05
        give_up = trio.current_time() + RETRY_FOR
        while True:
            try:
                if self.owner is None:
                    self.owner = await self._open()
                return await self.owner.ask(msg, timeout=OWNER_TIMEOUT)
            except DOC_GONE as exc:
                if trio.current_time() + delay > give_up:
                    raise
                log.info("collab %s: owner of %s gone (%s), retrying", self.origin, self.doc, exc)
                self.owner = None
                await trio.sleep(delay)  # a backoff before asking the directory again
                delay = min(RETRY_MAX_DELAY, delay * 2)

    @trouper.handler
    async def keepalive(self, msg: _Keepalive) -> None:
        self.send_bytes(_wire.KEEPALIVE)

    @trouper.handler
    async def heartbeat(self, msg: _Heartbeat) -> None:
        if self.session is not None:
            await self.session.heartbeat()

    async def on_text(self, text: str) -> None:
        await self._refuse(_wire.UNSUPPORTED, "text frames are not Yjs messages: send binary")

    async def on_bytes(self, data: bytes) -> None:
        if self.closing:
            return  # refused, or closing: nothing it sends counts
        try:
            message = _wire.parse(data)
        except _wire.WireError as exc:
            await self._refuse(exc.code, exc.reason)
            return
        try:
            await self._handle(message)
        except trouper.InvalidArgument as exc:
            await self._refuse(_wire.INVALID, f"refused: {exc}")
        except trouper.TrouperError as exc:
            log.warning("collab %s: document %s unavailable: %s", self.origin, self.doc, exc)
            await self._refuse(TRY_AGAIN_LATER, f"document {self.doc!r} unavailable, retry")

    async def _handle(self, message: _wire.Message) -> None:
        if isinstance(message, _wire.SyncStep1):
            reply = await self._owner_ask(SyncRequest(message.state_vector))
            assert isinstance(reply, SyncReply)
            self.send_bytes(_wire.encode_sync_step2(reply.update))
        elif isinstance(message, _wire.SyncStep2 | _wire.SyncUpdate):
            if message.update != _wire.EMPTY_UPDATE:
                await self._owner_ask(ApplyUpdate(message.update, self.origin))
                self.applied += 1
        elif isinstance(message, _wire.AwarenessUpdate):
            if message.clients and self.owner is not None:
                try:
                    await self.owner.tell(ApplyAwareness(message.update, self.origin))
                except DOC_GONE:
                    pass  # ephemeral: the client renews it, and the hub resyncs
        else:  # QueryAwareness
            awareness = await self._owner_ask(GetAwareness())
            if isinstance(awareness, bytes):
                self.send_bytes(_wire.encode_awareness(awareness))

    async def on_disconnect(self, code: int) -> None:
        me = self.ctx.self_ref
        if self.owner is not None:
            try:
                self.owner.tell_nowait(DropOrigin(self.origin))
            except trouper.TrouperError:
                pass  # gone already, or its mailbox is full: its states time out
        if self.registry is not None:
            try:
                self.registry.tell_nowait(LeaveHub(self.doc, me))
            except trouper.TrouperError:
                pass  # the registry watches sessions: it sees this one stop
        if self.session is not None:
            await self.session.delete()
