"""A Python editor of a collab document, over the same Yjs WebSocket
protocol as the browser page (tests and the benchmark use it).

    async with open_client(["http://127.0.0.1:8000"], "notes", "ada") as client:
        await client.synced()
        client.text.insert(0, "hello ")       # sent to the server at once
        await client.disconnect()              # offline: edits accumulate locally
        client.text += "typed offline"
        await client.reconnect()               # SyncStep1: only the difference comes
        await client.synced()                  # ... and the server has all we have

``client.doc`` is a ``pycrdt.Doc``; ``client.text`` its root ``Text``
"content", the editor's text. When the connection drops (not through
``disconnect``), the client tries the next URL of its list, with a bounded
backoff, and syncs again there: nothing typed meanwhile is lost.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import pycrdt
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, open_websocket_url

from . import _wire

#: The largest message the client takes from the server (a big document's SyncStep2).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Local updates waiting to be sent on the current connection; more, and the
#: connection is dropped and re-synced (the sync sends them all in one go).
MAX_PENDING = 10_000
#: Reconnection backoff: first delay, cap (seconds), doubled per failure in a row.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
#: How long one connection attempt (TCP + WebSocket handshake) may take.
CONNECT_TIMEOUT = 5.0
#: Seconds between two renewals of this client's awareness state (others
#: consider a state gone after 30 s without one).
AWARENESS_RENEW = 15.0
#: The colours of presence, by user name (as the page does).
COLOURS = ("#30bced", "#6eeb83", "#e0a100", "#ee6352", "#9ac2c9", "#8acb88", "#c774e8")


def colour_of(name: str) -> str:
    h = 0
    for c in name:
        h = (h * 31 + ord(c)) & 0xFFFFFFFF
    return COLOURS[h % len(COLOURS)]


def _ws_url(base: str, doc: str, user: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http"):
        base = "ws" + base[len("http") :]
    return f"{base}/ws?{urlencode({'doc': doc, 'user': user})}"


class CollabClient:
    """One editor: a pycrdt ``Doc`` kept in sync with the server."""

    def __init__(self, urls: list[str], doc: str, user: str) -> None:
        if not urls:
            raise ValueError("open_client needs at least one server URL")
        self.urls = list(urls)
        self.doc_id = doc
        self.user = user
        self.doc: pycrdt.Doc = pycrdt.Doc()
        self.text = self.doc.get("content", type=pycrdt.Text)
        self.awareness = pycrdt.Awareness(self.doc)
        #: Connections made so far, and the close (code, reason) of each that ended.
        self.connections = 0
        self.closes: list[tuple[int | None, str | None]] = []
        #: Bytes of the last SyncStep2 received (what a sync brought).
        self.last_sync_bytes = 0
        #: The URL of the current (or last) connection.
        self.url: str | None = None
        self._wanted = True
        self._wake = trio.Event()
        self._ws: WebSocketConnection | None = None
        self._scope: trio.CancelScope | None = None
        self._applying = False
        self._pending: trio.MemorySendChannel[bytes] | None = None
        self._changed = trio.Event()  # set (and renewed) at each step of the protocol
        self._ready = False  # this connection has done its first exchange
        self._step1_sent = 0
        self._step2_received = 0
        self._subscription = self.doc.observe(self._local_update)
        self.set_user(user)

    # ------------------------------------------------------------ public API

    def set_user(self, name: str) -> None:
        """Show ``name`` (with its colour) to the others, through awareness."""
        self.user = name
        self.awareness.set_local_state_field("user", {"name": name, "color": colour_of(name)})
        self._send_awareness()

    @property
    def online(self) -> bool:
        return self._ws is not None and self._ready

    async def synced(self) -> None:
        """Return once connected, synced, and the server holds every edit
        made here before the call (one more SyncStep1 round trip: the
        server handles a connection's frames in order and acknowledges each
        update before the next)."""
        while True:
            while not self.online:
                await self._changed.wait()
            ws = self._ws
            self._step1_sent += 1
            target = self._step1_sent
            await self._send(_wire.encode_sync_step1(self.doc.get_state()))
            while self._ws is ws and self._step2_received < target:
                await self._changed.wait()
            if self._ws is ws:
                return

    async def disconnect(self) -> None:
        """Go offline: local edits keep accumulating until ``reconnect``."""
        self._wanted = False
        if self._scope is not None:
            self._scope.cancel()
        while self._ws is not None:
            await self._changed.wait()

    async def reconnect(self) -> None:
        """Come back online (sync with ``await synced()``)."""
        self._wanted = True
        self._wake.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds, checked after each message and
        connection change (bound it with ``trio.fail_after``)."""
        while not predicate():
            await self._changed.wait()

    def states(self) -> dict[int, dict[str, Any]]:
        """The awareness states known here, this client's own included."""
        return dict(self.awareness.states)

    # ------------------------------------------------------------ internals

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _local_update(self, event: pycrdt.TransactionEvent) -> None:
        if self._applying or self._pending is None:
            return  # a remote update, or offline (the next sync carries it)
        try:
            self._pending.send_nowait(_wire.encode_update(event.update))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            if self._scope is not None:  # too far behind: reconnect and sync instead
                self._scope.cancel()

    def _send_awareness(self) -> None:
        if self._pending is None:
            return
        update = self.awareness.encode_awareness_update([self.awareness.client_id])
        try:
            self._pending.send_nowait(_wire.encode_awareness(update))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # sent again at the next renewal

    async def _send(self, frame: bytes) -> None:
        if self._pending is not None:
            await self._pending.send(frame)

    def _apply(self, update: bytes) -> None:
        self._applying = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying = False

    async def run(self) -> None:
        """Stay connected (to the first URL that answers) while wanted."""
        index = failures = 0
        while True:
            while not self._wanted:
                await self._wake.wait()
                self._wake = trio.Event()
            self.url = self.urls[index % len(self.urls)]
            try:
                if await self._connection(self.url):
                    failures = 0  # it synced: a later drop starts the backoff afresh
            except (HandshakeError, ConnectionClosed, OSError) as exc:
                self.closes.append((None, f"{type(exc).__name__}: {exc}"))
            if not self._wanted:
                continue
            index += 1  # dropped or refused: the next server of the list
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures, 10))
            failures += 1
            with trio.move_on_after(delay):  # a backoff; reconnect() cuts it short
                await self._wake.wait()
            if self._wake.is_set():
                self._wake = trio.Event()  # used up: the next backoff waits again

    async def _connection(self, url: str) -> bool:
        """One connection, until it ends; True if it got as far as syncing."""
        async with open_websocket_url(
            _ws_url(url, self.doc_id, self.user),
            max_message_size=MAX_MESSAGE_BYTES,
            connect_timeout=CONNECT_TIMEOUT,
            disconnect_timeout=1.0,
        ) as ws:
            send, receive = trio.open_memory_channel[bytes](MAX_PENDING)
            try:
                with trio.CancelScope() as self._scope:
                    self._ws, self._pending = ws, send
                    self.connections += 1
                    self._notify()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._writer, ws, receive, nursery.cancel_scope)
                        nursery.start_soon(self._renew_awareness)
                        self._step1_sent += 1
                        await send.send(_wire.encode_sync_step1(self.doc.get_state()))
                        self._send_awareness()
                        await self._reader(ws)
                        nursery.cancel_scope.cancel()
            finally:
                synced = self._ready
                self._ws, self._pending, self._scope, self._ready = None, None, None, False
                self._step1_sent = self._step2_received = 0
                closed = ws.closed
                self.closes.append((closed.code, closed.reason) if closed else (None, None))
                self._notify()
        return synced

    async def _writer(
        self,
        ws: WebSocketConnection,
        frames: trio.MemoryReceiveChannel[bytes],
        connection: trio.CancelScope,
    ) -> None:
        try:
            async for frame in frames:
                await ws.send_message(frame)
        except ConnectionClosed:
            connection.cancel()

    async def _renew_awareness(self) -> None:
        while True:
            await trio.sleep(AWARENESS_RENEW)  # a period, not a synchronisation
            self.awareness.set_local_state(self.awareness.get_local_state())
            self._send_awareness()

    async def _reader(self, ws: WebSocketConnection) -> None:
        try:
            while True:
                frame = await ws.get_message()
                if isinstance(frame, str):
                    continue
                await self._on_message(_wire.parse(frame))
        except ConnectionClosed:
            return
        except (_wire.WireError, ValueError) as exc:  # the server's bytes: drop this connection
            self.closes.append((None, f"bad message from the server: {exc}"))

    async def _on_message(self, message: _wire.Message) -> None:
        if isinstance(message, _wire.SyncStep1):
            # What the server lacks; after the first, this connection is in sync.
            await self._send(_wire.encode_sync_step2(self.doc.get_update(message.state_vector)))
            self._ready = True
        elif isinstance(message, _wire.SyncStep2):
            self._apply(message.update)
            self.last_sync_bytes = len(message.update)
            self._step2_received += 1
        elif isinstance(message, _wire.SyncUpdate):
            self._apply(message.update)
        elif isinstance(message, _wire.AwarenessUpdate):
            if message.clients:
                self.awareness.apply_awareness_update(message.update, "remote")
        else:
            self._send_awareness()
        self._notify()


@asynccontextmanager
async def open_client(urls: list[str], doc: str, user: str) -> AsyncIterator[CollabClient]:
    """A ``CollabClient`` of ``doc`` as ``user``, connected (and reconnecting) in the block."""
    client = CollabClient(urls, doc, user)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.run)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The block's own exception (or the client's), as itself: the
        # nursery is this function's business, not its caller's.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
