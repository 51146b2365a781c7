"""``Peer``: one other node (one incarnation of it), as this node sees it.

A peer outlives connections: pending asks, streams, watches, credit and the
outbox belong to it, so a reconnect (its link actor redials with backoff)
does not lose who watches what, nor tells queued meanwhile. What it may make
this node hold is bounded by ``RemoteConfig`` (see docs/remote.md, Limits).

Sending never writes: it queues for the connection's one writer task, so no
caller's cancellation can interrupt a write. Tells wait for per-destination
credit and outbox space by sleeping, never by spinning.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

import attrs
import trio

from .. import _errors as errors
from ..protocols import (
    CreditLedger,
    Envelope,
    PhiAccrualDetector,
    Tell,
    TellCredits,
    Terminated,
    Unwatch,
    Watch,
    WireRef,
)
from ..runtime import Reply
from ._outbox import Outbox
from ._wire import wire_ref

if TYPE_CHECKING:
    from ..runtime import ActorRef, Cell
    from ._conn import Connection
    from ._layer import Remoting
    from ._streams import RemoteSink, RemoteStream

log = logging.getLogger("trouper.remote")


class RemoteWatcher:
    """Stands in a local cell's watcher set for the actors of one peer that
    watch it; one per (peer, cell), counting the peer's watches."""

    __slots__ = ("cell", "count", "peer")

    def __init__(self, peer: Peer, cell: Cell) -> None:
        self.peer = peer
        self.cell = cell
        self.count = 0

    def watched_stopped(self, ref: ActorRef, reason: str) -> None:
        if self.peer.watched.pop(self.cell, None) is not None:
            self.peer.watch_count -= self.count
        self.peer.send_quiet(Terminated(wire_ref(ref), reason))


class Peer:
    """Everything this node knows about one other node."""

    def __init__(self, remoting: Remoting, node_id: str, incarnation: int) -> None:
        config = remoting.config
        self.remoting = remoting
        self.config = config
        self.node_id = node_id
        self.incarnation = incarnation
        self.addresses: list[str] = []
        self.status = "joining"
        self.conn: Connection | None = None
        self.outbox = Outbox(config.max_outbox_bytes, config.outbox_hard_limit)
        # What this node asked of the peer.
        self.asks: dict[int, Any] = {}
        self.ids = itertools.count(1)
        self.ask_slots = trio.Semaphore(config.max_pending_asks)
        self.credits: TellCredits[WireRef] = TellCredits(config.tell_window)
        self.credit_waiters: dict[WireRef, tuple[trio.Event, int]] = {}
        self.streams: dict[int, RemoteStream] = {}
        self.watching: dict[ActorRef, set[Cell]] = {}
        # What the peer asked of this node.
        self.ledger: CreditLedger[WireRef] = CreditLedger(config.tell_window)
        self.parked: dict[WireRef, int] = {}
        self.parked_total = 0
        self.inbound_asks = 0
        self.producers: dict[int, RemoteSink] = {}
        self.watched: dict[Cell, RemoteWatcher] = {}
        self.watch_count = 0
        self.names: dict[str, ActorRef] = {}
        self.requests = 0
        # Liveness.
        self.detector = PhiAccrualDetector(
            threshold=config.phi_threshold,
            min_std=config.heartbeat_interval / 4,
            acceptable_pause=config.acceptable_pause,
            first_interval=config.heartbeat_interval,
        )
        self.last_heard = trio.current_time()
        self.paused = False
        self.resume = trio.Event()
        self.heartbeats = itertools.count(1)
        self.disconnected = trio.Event()
        self.disconnected.set()
        self.up_changed = trio.Event()

    def __repr__(self) -> str:
        return f"<Peer {self.node_id}#{self.incarnation} {self.status}>"

    # ------------------------------------------------------------- sending

    def send(self, env: Envelope, *, urgent: bool = False) -> None:
        """Queue ``env`` for the writer; ``NodeDown`` if the peer is down."""
        if self.status == "down":
            raise errors.NodeDown(f"node {self.node_id} is down")
        self.outbox.push(env, urgent=urgent)

    def send_quiet(self, env: Envelope, *, urgent: bool = False) -> None:
        """Send if the peer is still there; an answer to a dead node is moot."""
        if self.status != "down":
            self.outbox.push(env, urgent=urgent)

    def check_up(self) -> None:
        if self.status == "down":
            raise errors.NodeDown(f"node {self.node_id} is down")

    async def wait_for_space(self) -> None:
        """Wait while the outbox is over its limit (backpressure)."""
        while self.outbox.full:
            self.check_up()
            await self.outbox.wait_for_space()
        self.check_up()

    async def take_credit(self, target: WireRef) -> None:
        """One tell's credit for ``target``: sleeps until the peer returns
        some. ``NodeDown`` if the peer goes down meanwhile."""
        credits = self.credits
        while not credits.try_take(target):
            self.check_up()
            event, count = self.credit_waiters.get(target, (None, 0))
            if event is None:
                event = trio.Event()
            self.credit_waiters[target] = (event, count + 1)
            try:
                await event.wait()
            finally:
                current, count = self.credit_waiters.get(target, (None, 0))
                if current is event:
                    if count <= 1:
                        del self.credit_waiters[target]
                    else:
                        self.credit_waiters[target] = (event, count - 1)
        self.check_up()

    def credit_returned(self, target: WireRef, n: int) -> None:
        self.credits.grant(target, n)
        self._wake(target)

    def _wake(self, target: WireRef) -> None:
        entry = self.credit_waiters.pop(target, None)
        if entry is not None:
            entry[0].set()

    def wake_all(self) -> None:
        for event, _ in self.credit_waiters.values():
            event.set()
        self.credit_waiters.clear()

    async def exchange(self, make: Any) -> Any:
        """Send ``make(id)`` and wait for its ``Reply``, ``Failure`` or
        ``SpawnResult`` (the caller bounds the wait)."""
        reply = Reply(trio.lowlevel.current_task())
        request_id = next(self.ids)
        self.asks[request_id] = reply
        try:
            await self.wait_for_space()
            self.send(make(request_id))
            return await reply.wait()
        finally:
            self.asks.pop(request_id, None)

    async def ask(self, make: Any) -> Any:
        async with self.ask_slots:
            return await self.exchange(make)

    def pending_asks(self) -> int:
        return len(self.asks)

    # ------------------------------------------------------------ watches

    def watch(self, cell: Cell, ref: ActorRef) -> None:
        cells = self.watching.setdefault(ref, set())
        if not cells:
            self.send_quiet(Watch(wire_ref(cell.ref), wire_ref(ref)))
        cells.add(cell)

    def unwatch(self, cell: Cell, ref: ActorRef) -> None:
        cells = self.watching.get(ref)
        if cells is None:
            return
        cells.discard(cell)
        if not cells:
            del self.watching[ref]
            self.send_quiet(Unwatch(wire_ref(cell.ref), wire_ref(ref)))

    # ------------------------------------------------------------ life

    def attach(self, conn: Connection) -> bool:
        """Make ``conn`` the live connection; False if it loses a tie-break."""
        if self.conn is not None and not (conn.preferred and not self.conn.preferred):
            return False
        if self.conn is not None:
            self.conn.close_soon("replaced by a simultaneous connection")
            self.detach(self.conn, "replaced")
        self.conn = conn
        self.status = "up"
        self.disconnected = trio.Event()
        now = trio.current_time()
        self.last_heard = now
        if len(self.outbox):
            self.outbox.busy_since = now  # tells kept from the last connection
        self.detector.heartbeat(now)
        # A new connection: credit in flight died with the old one.
        self.credits.reset()
        self.ledger.reset()
        self.wake_all()
        self.remoting.on_peer_up(self)
        for ref, cells in self.watching.items():
            if cells:  # re-arm: a Terminated may have been lost with the old link
                self.send_quiet(Watch(wire_ref(next(iter(cells)).ref), wire_ref(ref)))
        return True

    def detach(self, conn: Connection, why: str) -> None:
        if self.conn is not conn:
            return
        self.conn = None
        self.paused = False
        self.resume.set()
        # Tells wait for the next connection (they are fire-and-forget);
        # everything else was part of an exchange that fails now.
        self.outbox.discard(keep=Tell)
        self.disconnected.set()
        self.fail_in_flight(errors.NodeDown(f"connection to node {self.node_id} lost: {why}"))

    def fail_in_flight(self, exc: errors.TrouperError) -> None:
        asks, self.asks = self.asks, {}
        for reply in asks.values():
            reply.fail(exc)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.end(exc)
        producers, self.producers = self.producers, {}
        for producer in producers.values():
            producer.cancel()

    def down(self, reason: str) -> None:
        """Declared down: every watch fires ``node-down``, names vanish."""
        if self.status == "down":
            return
        level = logging.INFO if reason == "left the cluster" else logging.WARNING
        log.log(level, "node %s (%s) is down: %s", self.node_id, self.incarnation, reason)
        if self.conn is not None:
            conn = self.conn
            conn.close_soon(reason)
            self.detach(conn, reason)
        self.status = "down"
        # Credit either way dies with the peer (nothing more is sent to it).
        self.credits.reset()
        self.ledger.reset()
        self.outbox.discard()
        self.outbox.release_waiters()
        self.wake_all()
        self.fail_in_flight(errors.NodeDown(f"node {self.node_id} is down: {reason}"))
        watching, self.watching = self.watching, {}
        for ref, cells in watching.items():
            for cell in cells:
                cell.watched_stopped(ref, "node-down")
        watched, self.watched = self.watched, {}
        self.watch_count = 0
        for cell, watcher in watched.items():
            cell.remove_watcher(watcher)
        self.remoting.on_peer_down(self)

    # ----------------------------------------------------- reader pauses

    def must_pause(self) -> bool:
        """Stop reading from this peer for now? Only to bound what it makes
        this node hold; the pause is local backpressure, never silence."""
        return (
            self.parked_total >= self.config.max_parked
            or self.inbound_asks >= self.config.max_inbound_asks
        )

    def maybe_resume(self) -> None:
        if self.paused and not self.must_pause():
            self.paused = False
            self.resume.set()


@attrs.frozen
class PeerStatistics:
    """What one peer holds of this node, and this node of it (a snapshot).

    Every count here is bounded by an option of ``RemoteConfig``; the names
    say which: ``pending_asks`` by ``max_pending_asks``, ``inbound_asks`` by
    ``max_inbound_asks``, ``parked`` by ``max_parked`` (and ``tell_window``
    per actor), ``outbox_bytes`` by ``max_outbox_bytes`` (times
    ``outbox_hard_factor``), ``streams_in`` by ``max_streams``, ``watched_by``
    by ``max_watches``, ``names`` by ``max_names``, ``requests`` by
    ``max_peer_requests``.
    """

    node_id: str
    incarnation: int
    status: str
    connected: bool
    paused: bool
    pending_asks: int
    inbound_asks: int
    parked: int
    parked_targets: int
    outbox_bytes: int
    outbox_envelopes: int
    streams_out: int
    streams_in: int
    watching: int
    watched_by: int
    names: int
    requests: int
    credit_targets: int
    owed_targets: int
    credit_waiters: int


def statistics(peer: Peer) -> PeerStatistics:
    return PeerStatistics(
        node_id=peer.node_id,
        incarnation=peer.incarnation,
        status=peer.status,
        connected=peer.conn is not None,
        paused=peer.paused,
        pending_asks=len(peer.asks),
        inbound_asks=peer.inbound_asks,
        parked=peer.parked_total,
        parked_targets=len(peer.parked),
        outbox_bytes=peer.outbox.bytes,
        outbox_envelopes=len(peer.outbox),
        streams_out=len(peer.streams),
        streams_in=len(peer.producers),
        watching=len(peer.watching),
        watched_by=peer.watch_count,
        names=len(peer.names),
        requests=peer.requests,
        credit_targets=len(peer.credits),
        owed_targets=len(peer.ledger),
        credit_waiters=len(peer.credit_waiters),
    )
