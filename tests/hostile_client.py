"""A raw, authenticated trouper peer that sends whatever it is told to.

``HostileClient`` does the real handshake (the cookie's HMAC) over plain TCP
and then speaks envelopes directly, so a test can send what no well-behaved
node would: unknown targets, reused ids, absurd credits, floods. It keeps
its link honest in the two ways the node is entitled to judge: it heartbeats
(a task of its own, every ``HEARTBEAT`` seconds) and it reads everything
the node sends (so it is never a slow consumer). What it reads is recorded
(answers by id, stream items and ends, credit, spawn results) and every
arrival wakes ``wait_for``, so tests wait on events, never on sleeps.

Every I/O runs under ``trio.fail_after``.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import trio

from trouper.protocols import (
    Credit,
    Envelope,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Heartbeat,
    InitiatorConnection,
    Reply,
    SpawnResult,
    StreamEnd,
    StreamItem,
    Terminated,
    WireRef,
)

#: Seconds any single write, read or handshake may take.
IO_DEADLINE = 10.0
#: How often the client heartbeats (the node's default interval is 0.5 s).
HEARTBEAT = 0.1


class Conn:
    """One connection of the client (it may reconnect after a Goodbye)."""

    def __init__(self, stream: trio.SocketStream, decoder: FrameDecoder) -> None:
        self.stream = stream
        self.decoder = decoder
        self.lock = trio.Lock()  # one frame at a time: never interleave writes
        self.scope = trio.CancelScope()
        self.closed = trio.Event()
        self.closed_by_node = False


class HostileClient:
    """An authenticated raw peer of the node listening at ``url``."""

    def __init__(self, url: str, node_id: str, cookie: bytes, nursery: trio.Nursery) -> None:
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self.node_id = node_id
        self.cookie = cookie
        self.nursery = nursery
        self.incarnation = 1
        self.conn: Conn | None = None
        self.encoder = FrameEncoder()
        self.heartbeats = itertools.count(1)
        # What the node sent.
        self.answers: dict[int, list[Envelope]] = defaultdict(list)
        self.stream_items: Counter[int] = Counter()
        self.stream_ends: set[int] = set()
        self.credit: Counter[WireRef] = Counter()
        self.spawned: list[WireRef] = []
        self.terminated = 0
        self.goodbyes: list[Goodbye] = []
        self.received = 0
        self._changed = trio.Event()
        #: Called after each batch of arrivals (a test's invariant check).
        self.observer: Callable[[], None] | None = None

    # ------------------------------------------------------------ links

    async def connect(self) -> None:
        """Dial and do the real handshake; then read and heartbeat in the background."""
        with trio.fail_after(IO_DEADLINE):
            stream = await trio.open_tcp_stream(self.host, self.port)
            proto = InitiatorConnection(
                node_id=self.node_id,
                incarnation=self.incarnation,
                cookie=self.cookie,
                nonce=os.urandom(16),
            )
            decoder = FrameDecoder()
            await stream.send_all(self.encoder.encode(proto.start()))
            leftover: list[Envelope] = []
            while not proto.established:
                data = await stream.receive_some(65536)
                assert data, f"the node hung up on {self.node_id}'s handshake"
                for env in decoder.feed(data):
                    if proto.established:
                        leftover.append(env)
                        continue
                    replies = proto.receive(env)
                    if replies:
                        await stream.send_all(self.encoder.encode(replies))
        conn = Conn(stream, decoder)
        self.conn = conn
        for env in leftover:
            self._record(env)
        self.nursery.start_soon(self._serve, conn)

    async def _serve(self, conn: Conn) -> None:
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._heartbeat, conn)
                    await self._read(conn)
                    conn.closed_by_node = True
                    nursery.cancel_scope.cancel()
        finally:
            conn.closed.set()
            self._wake()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(conn.stream)

    async def _read(self, conn: Conn) -> None:
        while True:
            try:
                data = await conn.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            for env in conn.decoder.feed(data):
                self._record(env)
            self._wake()
            if self.observer is not None:
                self.observer()

    async def _heartbeat(self, conn: Conn) -> None:
        while True:
            await self.send([Heartbeat(next(self.heartbeats), trio.current_time())], conn)
            await trio.sleep(HEARTBEAT)

    async def close(self) -> None:
        """Hang up (no Goodbye) and wait until the connection's tasks ended."""
        conn = self.conn
        if conn is not None:
            conn.scope.cancel()
            with trio.fail_after(IO_DEADLINE):
                await conn.closed.wait()

    @property
    def up(self) -> bool:
        return self.conn is not None and not self.conn.closed.is_set()

    # ------------------------------------------------------------ sending

    async def send(self, envelopes: Sequence[Envelope], conn: Conn | None = None) -> None:
        """Write ``envelopes`` as one frame (the node must not have hung up)."""
        conn = conn or self.conn
        assert conn is not None, "not connected"
        frame = self.encoder.encode(list(envelopes))
        async with conn.lock:
            with trio.fail_after(IO_DEADLINE):
                await conn.stream.send_all(frame)

    # ------------------------------------------------------------ receiving

    def _record(self, env: Envelope) -> None:
        self.received += 1
        kind = type(env)
        if kind is Reply or kind is Failure or kind is SpawnResult:
            self.answers[env.id].append(env)  # type: ignore[union-attr]
            if kind is SpawnResult:
                self.spawned.append(env.ref)  # type: ignore[union-attr]
        elif kind is StreamItem:
            self.stream_items[env.id] += 1  # type: ignore[union-attr]
        elif kind is StreamEnd:
            self.stream_ends.add(env.id)  # type: ignore[union-attr]
        elif kind is Credit:
            self.credit[env.target] += env.n  # type: ignore[union-attr]
        elif kind is Terminated:
            self.terminated += 1
        elif kind is Goodbye:
            self.goodbyes.append(env)  # type: ignore[arg-type]

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``predicate()`` holds, re-checking on every arrival."""
        try:
            with trio.fail_after(timeout):
                while True:
                    changed = self._changed
                    if predicate():
                        return
                    await changed.wait()
        except trio.TooSlowError:
            raise AssertionError(f"the node never answered: {what} (within {timeout}s)") from None

    def answer(self, id: int) -> Any:
        found = self.answers.get(id)
        return found[0] if found else None
