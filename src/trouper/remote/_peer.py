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
from ._channels import ChannelTable
from ._outbox import Outbox
from ._stats import Traffic
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
        self.traffic = Traffic()
        self.outbox = Outbox(config.max_outbox_bytes, config.outbox_hard_limit)
        #: The largest frame the peer accepts (said in its handshake).
        self.max_frame = config.max_frame_size
        # What this node asked of the peer.
        self.asks: dict[int, Any] = {}
        self.ids = itertools.count(1)
        self.slot_freed = trio.Event()
        self.credits: TellCredits[WireRef] = TellCredits(config.tell_window)
        self.credit_waiters: dict[WireRef, tuple[trio.Event, int]] = {}
        self.streams: dict[int, RemoteStream] = {}
        self.watching: dict[ActorRef, set[Cell]] = {}
        self.channels = ChannelTable()  # both ways: opened here, and by the peer
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

    def send_now(self, env: Envelope) -> None:
        """Queue ``env`` and, on an idle TCP link, write it at once from this
        task (an ask or a reply: someone waits for it); never waits. The hard
        limit is checked as in ``send_quiet``: replies never wait either."""
        if self.status == "down":
            raise errors.NodeDown(f"node {self.node_id} is down")
        conn = self.conn
        if conn is not None and conn.goodbye_sent:
            return
        self.outbox.push(env, wake=conn is None)
        if conn is not None:
            conn.write_now(self)
        if self.outbox.overflowing:
            self.slow_consumer(f"{self.outbox.bytes} bytes queued")

    def send_quiet(self, env: Envelope, *, urgent: bool = False) -> None:
        """Send if the peer is still there; an answer to a dead node is moot.

        Replies and control never wait for space, so the hard limit is
        checked here, at once: checked only at the next tick, a peer asking
        fast and reading nothing could pile up any amount in between. What
        comes after a Goodbye is dropped: it would never be written.
        """
        conn = self.conn
        if self.status == "down" or (conn is not None and conn.goodbye_sent):
            return
        self.outbox.push(env, urgent=urgent)
        if self.outbox.overflowing:
            self.slow_consumer(f"{self.outbox.bytes} bytes queued")

    def slow_consumer(self, why: str) -> None:
        """Disconnect a peer that does not read what it is sent (after a
        Goodbye that says so, which it gets only if it reads after all)."""
        conn = self.conn
        if conn is None or conn.goodbye_sent:
            return
        log.warning(
            "node %s: disconnecting %s (slow consumer: %s)",
            self.remoting.node.id,
            self.node_id,
            why,
        )
        conn.goodbye(f"slow consumer: {why}", "slow-consumer")

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

    async def ask(self, make: Any, deadline: Any = None) -> Any:
        """Send ``make(id)`` and wait for its ``Reply``, ``Failure`` or
        ``SpawnResult``: at most ``max_pending_asks`` at once per peer (more
        callers wait for a slot). ``deadline(reply)``, if given, arms the
        ask's timeout on the node's timer queue (no cancel scope: the hot
        path); otherwise the caller bounds the wait."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while len(self.asks) >= self.config.max_pending_asks or self.outbox.full:
            self.check_up()
            if self.outbox.full:
                await self.outbox.wait_for_space()
            else:
                self.slot_freed = trio.Event() if self.slot_freed.is_set() else self.slot_freed
                await self.slot_freed.wait()
        self.check_up()
        reply = Reply(trio.lowlevel.current_task())
        request_id = next(self.ids)
        self.asks[request_id] = reply
        try:
            self.send_now(make(request_id))
            if deadline is not None:
                deadline(reply)
            return await reply.wait()
        finally:
            self.asks.pop(request_id, None)
            self.slot_freed.set()

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
        self.max_frame = conn.encoder.max_frame_size
        self.status = "up"
        self.disconnected = trio.Event()
        now = trio.current_time()
        self.last_heard = now
        self.outbox.busy_since = None  # a new connection: the clock starts again
        self.detector.heartbeat(now)
        # A new connection: credit in flight died with the old one.
        self.credits.reset()
        self.ledger.reset()
        self.wake_all()
        # The peer re-sends a Watch for each watch it still wants (below, on
        # its side); an Unwatch may have died with the old connection, and
        # counted twice a re-sent Watch would never be undone.
        self.drop_watched()
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
        self.channels.fail_all(exc)

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
        dead_letters = self.remoting.node.dead_letters
        for env in self.outbox.discard():
            if type(env) is Tell:  # tell() took it, and it will never be sent
                dead_letters.record(env.type_name, None, env.target, f"node down: {reason}")
        self.outbox.release_waiters()
        self.wake_all()
        self.fail_in_flight(errors.NodeDown(f"node {self.node_id} is down: {reason}"))
        watching, self.watching = self.watching, {}
        for ref, cells in watching.items():
            for cell in cells:
                cell.watched_stopped(ref, "node-down")
        self.drop_watched()
        self.remoting.on_peer_down(self)

    def drop_watched(self) -> None:
        """Forget every watch the peer holds on this node's actors."""
        watched, self.watched = self.watched, {}
        self.watch_count = 0
        for cell, watcher in watched.items():
            cell.remove_watcher(watcher)

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
