"""Everything a peer can grow is bounded (issue 10, items 4 and 6).

One focused test per limit of ``trouper.remote.RemoteConfig``, against real
nodes on 127.0.0.1 in this process, and a raw authenticated TCP client
(``RawPeer``) wherever a peer has to misbehave. Each test shows that the
limit has its default, that it can be set, that reaching it has the effect
docs/remote.md ("Limits") promises, that only the offending peer notices,
and that nothing acknowledged is lost. Waits are bounded by
``trio.fail_after``; states another node reaches are polled through the
public ``node.remote.statistics()`` (or ``members()``), never slept for.
Where time itself must pass (a pause outlasting ``down_after``, timeouts,
backoff), it passes under the MockClock. A few counts have no statistic
(connections in the handshake, links gossip started): those tests read the
private attribute, and say so.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import msgspec
import pytest
import trio
import trio.testing

import trouper
from raw_peer import dial_handshaken
from trouper.protocols import (
    Ask,
    Envelope,
    Failure,
    FrameDecoder,
    FrameEncoder,
    Goodbye,
    Gossip,
    Heartbeat,
    Member,
    RegistryUpdate,
    Reply,
    Spawn,
    SpawnResult,
    StreamCancel,
    StreamCredit,
    StreamEnd,
    StreamItem,
    StreamOpen,
    Tell,
    Terminated,
    Watch,
    WireRef,
)
from trouper.remote import PeerStatistics, RemoteConfig, Remoting

COOKIE = b"bounds-cookie"
KIB = 1024
MIB = 1024 * KIB
#: Quick failure detection, for the tests that must show a peer is NOT down.
FAST: dict[str, Any] = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 1.5}
#: Under the MockClock, jump only over this much real idleness: never in the
#: middle of a transfer on loopback, and still fast through idle waits.
JUMP = 0.003


def default(option: str) -> Any:
    """The default of one ``RemoteConfig`` option (what docs/remote.md lists)."""
    for field in attrs.fields(RemoteConfig):
        if field.name == option:
            return field.default
    raise AssertionError(f"RemoteConfig has no option {option!r}")


def remoting(node: trouper.Node) -> Remoting:
    layer = node.remote
    assert isinstance(layer, Remoting)
    return layer


def stats(node: trouper.Node, peer: str) -> PeerStatistics:
    return remoting(node).statistics()[peer]


def status_of(node: trouper.Node, peer: str) -> tuple[str, int] | None:
    for member in node.members():
        if member.node_id == peer:
            return member.status, member.incarnation
    return None


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll a state that another node (or the kernel) reaches; the caller
    bounds the wait with ``fail_after``."""
    while True:
        if predicate():
            return
        await trio.sleep(0.005)


@asynccontextmanager
async def pair(
    *, fast: bool = False, **options: Any
) -> AsyncIterator[tuple[trouper.Node, trouper.Node]]:
    """``srv`` (listening, with ``options``) and ``other``, a legitimate peer
    (both with quick failure detection if ``fast``)."""
    timing = FAST if fast else {}
    async with (
        trouper.open_node(
            "srv", listen="tcp://127.0.0.1:0", cookie=COOKIE, **{**timing, **options}
        ) as srv,
        trouper.open_node("other", seeds=srv.addresses, cookie=COOKIE, **timing) as other,
    ):
        await srv.wait_for_members(2)
        await other.wait_for_members(2)
        yield srv, other


class RawPeer:
    """An authenticated trouper peer made of a bare TCP stream, to misbehave."""

    def __init__(self, stream: trio.SocketStream, decoder: FrameDecoder, node_id: str) -> None:
        self.stream = stream
        self.decoder = decoder
        self.node_id = node_id
        self.encoder = FrameEncoder()
        self.ids = iter(range(1, 1 << 62))
        self.sending = trio.Lock()

    @classmethod
    async def connect(cls, node: trouper.Node, node_id: str = "raw") -> RawPeer:
        stream, decoder = await dial_handshaken(node.addresses[0], node_id, COOKIE)
        # The node knows this peer once it has served the connection.
        await eventually(lambda: node_id in remoting(node).statistics())
        return cls(stream, decoder, node_id)

    async def send(self, *envelopes: Envelope) -> None:
        async with self.sending:
            await self.stream.send_all(self.encoder.encode(list(envelopes)))

    async def receive(self) -> list[Envelope] | None:
        """The envelopes of one read; None once the node hung up."""
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            return None
        return self.decoder.feed(data) if data else None

    async def until(self, want: Callable[[Envelope], bool], count: int = 1) -> list[Envelope]:
        """Read until ``count`` envelopes satisfy ``want``; fails on a Goodbye."""
        got: list[Envelope] = []
        while len(got) < count:
            envelopes = await self.receive()
            assert envelopes is not None, f"the node hung up on {self.node_id}"
            for env in envelopes:
                assert not isinstance(env, Goodbye), env
                if want(env):
                    got.append(env)
        return got

    async def roundtrip(self, target: trouper.ActorRef) -> None:
        """An ask of a ``Big`` and its reply: everything sent before is handled."""
        ask = Ask(next(self.ids), wire(target), "builtins:int", payload(1))
        await self.send(ask)
        await self.until(lambda env: isinstance(env, Reply) and env.id == ask.id)

    async def heartbeats(
        self, interval: float, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        """Be a live peer, whether or not we read anything (``nursery.start``
        it; cancelling the scope it returns makes the peer go quiet)."""
        with trio.CancelScope() as scope:
            task_status.started(scope)
            for seq in range(1, 1 << 62):
                try:
                    await self.send(Heartbeat(seq, trio.current_time()))
                except trio.BrokenResourceError:
                    return  # the node hung up
                await trio.sleep(interval)


def payload(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.msgpack.encode(value))


def wire(ref: trouper.ActorRef) -> WireRef:
    return WireRef(ref.node_id, ref.path, ref.uid)


class Logged:
    """``trouper.remote`` warnings that contain some text, as they happen."""

    def __init__(self) -> None:
        self.seen = trio.Event()
        self.count = 0


@contextmanager
def log_event(text: str) -> Iterator[Logged]:
    logged = Logged()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                logged.count += 1
                logged.seen.set()

    handler = Watch(logging.WARNING)
    logger = logging.getLogger("trouper.remote")
    logger.addHandler(handler)
    try:
        yield logged
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------ actors


class Big(trouper.Actor):
    """Replies with more bytes than it was asked with."""

    @trouper.handler
    async def big(self, msg: int) -> bytes:
        return bytes(msg)


class Counter(trouper.Actor):
    def __init__(self) -> None:
        self.seen: list[int] = []

    @trouper.handler
    async def add(self, msg: int) -> None:
        self.seen.append(msg)

    @trouper.handler
    async def report(self, msg: str) -> list[int]:
        return self.seen


class Gate(trouper.Actor):
    """Holds each message until the test opens it (and says when one is held)."""

    def __init__(self, opened: trio.Event, entered: trio.Event | None = None) -> None:
        self.opened = opened
        self.entered = entered if entered is not None else trio.Event()
        self.seen: list[int] = []

    @trouper.handler
    async def hold(self, msg: int) -> int:
        self.entered.set()
        await self.opened.wait()
        self.seen.append(msg)
        return msg

    @trouper.handler
    async def report(self, msg: str) -> list[int]:
        return self.seen


class Numbers(trouper.Actor):
    @trouper.handler
    async def numbers(self, msg: int) -> AsyncIterator[int]:
        for i in range(msg):
            yield i


class Held(trouper.Actor):
    """What a peer may spawn here (``allow_spawn``): it starts, and handles a
    message, only when the test sets ``Held.start`` / ``Held.handle``."""

    start = trio.Event()
    handle = trio.Event()

    async def on_start(self) -> None:
        await Held.start.wait()

    @trouper.handler
    async def hold(self, msg: int) -> int:
        await Held.handle.wait()
        return msg


class Faulty(trouper.Actor):
    """Fails mid-stream, and fails a plain handler reached through stream()."""

    @trouper.handler
    async def items(self, msg: int) -> AsyncIterator[int]:
        yield msg
        raise ValueError("stream broke")

    @trouper.handler
    async def plain(self, msg: str) -> str:
        raise ValueError("plain broke")

    @trouper.handler
    async def fine(self, msg: float) -> float:
        return msg


class Chunks(trouper.Actor):
    """Streams chunks of the sizes it is asked for."""

    @trouper.handler
    async def chunks(self, msg: list[int]) -> AsyncIterator[bytes]:
        for size in msg:
            yield bytes(size)


@trouper.message
class Carry(msgspec.Struct):
    to: trouper.ActorRef


class Carrier(trouper.Actor):
    @trouper.handler
    async def carry(self, msg: Carry) -> str:
        return msg.to.path


async def legit_traffic(srv: trouper.Node, other: trouper.Node, n: int = 50) -> None:
    """The legitimate peer still works both ways, and loses nothing."""
    here = await srv.spawn(Counter)
    there = remoting(other).resolve("srv", here.path, here.uid)
    for i in range(n):
        await there.tell(i)
    assert await there.ask("report") == list(range(n))
    big = await other.spawn(Big)
    assert await remoting(srv).resolve("other", big.path, big.uid).ask(10) == bytes(10)


# -------------------------------------------------- 1. the outbox per peer


async def test_a_peer_that_never_reads_is_held_to_the_outbox_limits() -> None:
    """Replies never wait, but past ``max_outbox_bytes * outbox_hard_factor``
    the peer is disconnected at once as a slow consumer: its outbox never
    holds much more than that, however fast it asks. Local senders wait at
    ``max_outbox_bytes``, and a tell that waited is a dead letter if the
    peer goes down before it is sent; the other peer carries on."""
    assert (default("max_outbox_bytes"), default("outbox_hard_factor")) == (32 * MIB, 4)
    limit, factor, reply = 256 * KIB, 4, 64 * KIB
    with trio.fail_after(30), log_event("slow consumer") as disconnected:
        async with pair(fast=True, max_outbox_bytes=limit, outbox_hard_factor=factor) as (
            srv,
            other,
        ):
            big = await srv.spawn(Big, name="big")
            raw = await RawPeer.connect(srv)
            before = status_of(srv, "other")
            assert before is not None and before[0] == "up"
            highest = 0

            async def flood(until: Callable[[], bool]) -> None:
                nonlocal highest
                while not until():
                    batch = [Ask(next(raw.ids), wire(big), "builtins:int", payload(reply))] * 8
                    try:
                        await raw.send(*batch)
                    except trio.BrokenResourceError:
                        return  # the node hung up on us
                    highest = max(highest, stats(srv, "raw").outbox_bytes)

            # The kernel's buffers fill first, then the outbox up to the limit.
            await flood(lambda: stats(srv, "raw").outbox_bytes >= limit)
            ghost = remoting(srv).resolve("raw", "/user/ghost", 1)
            with pytest.raises(trouper.MailboxFull, match="saturated"):
                ghost.tell_nowait(1)
            told = trio.Event()

            async def tell() -> None:
                await ghost.tell(2)  # waits for space: backpressure
                told.set()

            async with srv.dead_letters.subscribe() as letters, trio.open_nursery() as nursery:
                beating = await nursery.start(raw.heartbeats, FAST["heartbeat_interval"])
                nursery.start_soon(tell)
                await trio.testing.wait_all_tasks_blocked()
                assert not told.is_set()
                await legit_traffic(srv, other)  # meanwhile, the real peer is served
                await flood(lambda: not stats(srv, "raw").connected)
                await disconnected.seen.wait()
                await told.wait()  # the disconnection freed the space
                assert highest <= factor * limit + 2 * reply, highest
                assert stats(srv, "raw").outbox_bytes < limit
                # The tell waits for raw's next connection; raw goes quiet
                # instead, is declared down, and the tell is a dead letter.
                beating.cancel()
                letter = await letters.receive()
            assert (letter.message, letter.recipient.path) == ("builtins:int", "/user/ghost")
            assert letter.reason.startswith("node down")
            await legit_traffic(srv, other)
            assert status_of(srv, "other") == before


async def test_a_peer_that_stops_reading_is_told_why(mock_clock: trio.testing.MockClock) -> None:
    """With data waiting and no write completing for ``slow_consumer_timeout``
    (under the hard limit), the peer is disconnected with a Goodbye whose
    code is "slow-consumer"; it reads that Goodbye if it reads at all."""
    mock_clock.autojump_threshold = JUMP
    timeout = default("slow_consumer_timeout")
    assert timeout == 15.0
    with trio.fail_after(120), log_event("slow consumer") as disconnected:
        async with pair() as (srv, other):
            big = await srv.spawn(Big, name="big")
            raw = await RawPeer.connect(srv)
            async with trio.open_nursery() as nursery:
                await nursery.start(raw.heartbeats, default("heartbeat_interval"))
                ask = Ask(next(raw.ids), wire(big), "builtins:int", payload(64 * KIB))
                while stats(srv, "raw").outbox_bytes < MIB:  # the kernel's buffers are full
                    await raw.send(*[ask] * 8)
                stopped = trio.current_time()
                await disconnected.seen.wait()
                waited = trio.current_time() - stopped
                assert timeout - 1 <= waited <= timeout + 1, waited
                said: list[Envelope] = []
                while (envelopes := await raw.receive()) is not None:
                    said.extend(envelopes)
                nursery.cancel_scope.cancel()
            goodbyes = [env for env in said if isinstance(env, Goodbye)]
            assert [g.code for g in goodbyes] == ["slow-consumer"], goodbyes
            assert "nothing read for" in goodbyes[0].reason
            assert not stats(srv, "raw").connected and stats(srv, "raw").outbox_bytes == 0
            await legit_traffic(srv, other)


# ------------------------------------------------------- 2. asks per peer


async def test_pending_asks_are_bounded_per_peer_and_waiting_counts_against_the_timeout() -> None:
    """``max_pending_asks`` (the asking side): further asks of that peer wait
    for a slot, within their timeout; asks of other peers do not wait."""
    assert default("max_pending_asks") == 10_000
    with trio.fail_after(30):
        async with (
            pair(max_pending_asks=2) as (srv, other),
            trouper.open_node("third", seeds=srv.addresses, cookie=COOKIE) as third,
        ):
            await srv.wait_for_members(3)
            opened = trio.Event()
            await other.spawn(Gate, opened, name="gate")
            gate = await srv.lookup("gate", timeout=5)
            quick = await other.spawn(Big)
            elsewhere = await third.spawn(Big)
            results: list[int] = []

            async def ask(n: int) -> None:
                results.append(await gate.ask(n, timeout=20))

            async with trio.open_nursery() as nursery:
                for n in range(5):
                    nursery.start_soon(ask, n)
                await eventually(lambda: stats(srv, "other").pending_asks == 2)
                resolve = remoting(srv).resolve
                assert await resolve("third", elsewhere.path, elsewhere.uid).ask(3) == bytes(3)
                with pytest.raises(trouper.AskTimeout):
                    await resolve("other", quick.path, quick.uid).ask(3, timeout=0.2)
                assert stats(srv, "other").pending_asks == 2
                opened.set()
            assert sorted(results) == [0, 1, 2, 3, 4]
            assert stats(srv, "other").pending_asks == 0


async def test_inbound_asks_pause_reading_and_that_is_not_silence(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Past ``max_inbound_asks`` unanswered asks the node stops reading from
    that peer (local backpressure): however long that lasts, the failure
    detector does not count it as the peer's silence, and once answers go
    out, reading resumes and nothing is lost."""
    mock_clock.autojump_threshold = JUMP
    assert default("max_inbound_asks") == 20_000
    limit = 4
    with trio.fail_after(60):
        async with pair(fast=True, max_inbound_asks=limit) as (srv, other):
            opened = trio.Event()
            gate = await srv.spawn(Gate, opened)
            counter = await srv.spawn(Counter)
            raw = await RawPeer.connect(srv)
            seen = status_of(srv, "raw")
            assert seen is not None and seen[0] == "up"

            def ask() -> Ask:
                return Ask(next(raw.ids), wire(gate), "builtins:int", payload(1))

            async with trio.open_nursery() as nursery:
                await nursery.start(raw.heartbeats, FAST["heartbeat_interval"])
                for _ in range(limit):
                    await raw.send(ask())
                await eventually(lambda: stats(srv, "raw").paused)
                await raw.send(ask(), ask(), ask(), Tell(wire(counter), "builtins:int", payload(7)))
                # Many times ``down_after`` (virtual time) without a byte read.
                await trio.sleep(10 * FAST["down_after"])
                held = stats(srv, "raw")
                assert (held.paused, held.inbound_asks) == (True, limit)
                assert status_of(srv, "raw") == seen
                assert await counter.ask("report") == []  # still unread
                await legit_traffic(srv, other)
                opened.set()
                replies = await raw.until(lambda env: isinstance(env, Reply), count=limit + 3)
                nursery.cancel_scope.cancel()
            assert sorted(r.id for r in replies if isinstance(r, Reply)) == list(
                range(1, limit + 4)
            )
            assert await counter.ask("report") == [7]
            resumed = stats(srv, "raw")
            assert (resumed.paused, resumed.inbound_asks) == (False, 0)
            assert status_of(srv, "raw") == seen


# ----------------------------------------------------- 3. streams per peer


async def test_streams_per_peer_are_bounded_and_a_reused_id_is_refused() -> None:
    """Past ``max_streams`` a ``StreamOpen`` is answered with a ``StreamEnd``
    carrying the error; a reused id is refused the same way, and the stream
    already open under it carries on."""
    assert default("max_streams") == 1_000
    with trio.fail_after(30):
        async with pair(max_streams=3) as (srv, other):
            numbers = await srv.spawn(Numbers, name="numbers")
            raw = await RawPeer.connect(srv)

            def open_stream(id: int) -> StreamOpen:
                return StreamOpen(id, wire(numbers), "builtins:int", payload(10**9), 1)

            def item(id: int) -> Callable[[Envelope], bool]:
                return lambda env: isinstance(env, StreamItem) and env.id == id

            await raw.send(*(open_stream(i) for i in (1, 2, 3)))
            await raw.until(lambda env: isinstance(env, StreamItem), count=3)  # one per credit
            assert stats(srv, "raw").streams_in == 3
            await raw.send(open_stream(4), open_stream(2))
            over, reused = await raw.until(lambda env: isinstance(env, StreamEnd), count=2)
            assert isinstance(over, StreamEnd) and over.id == 4 and over.error is not None
            assert over.error.error_code == "mailbox-full" and "3 streams" in over.error.message
            assert isinstance(reused, StreamEnd) and reused.id == 2 and reused.error is not None
            assert "already open" in reused.error.message
            assert stats(srv, "raw").streams_in == 3
            # The stream open under id 2 is not orphaned: it takes credit still.
            await raw.send(StreamCredit(2, 1))
            (second,) = await raw.until(item(2))
            assert isinstance(second, StreamItem)
            assert msgspec.msgpack.decode(second.payload) == 1
            # Other peers have streams of their own meanwhile.
            ref = await other.lookup("numbers", timeout=5)
            async with ref.stream(20, window=4) as items:
                assert [i async for i in items] == list(range(20))
            # A cancelled stream frees its place.
            await raw.send(StreamCancel(2, "done"))
            await eventually(lambda: stats(srv, "raw").streams_in == 2)
            await raw.send(open_stream(5))
            await raw.until(item(5))
            await raw.send(*(StreamCancel(i, "done") for i in (1, 3, 5)))
            await eventually(lambda: stats(srv, "raw").streams_in == 0)
            assert status_of(srv, "raw") == ("up", 1)


# ------------------------------------- 4. watches, names, peers, requests


async def test_watches_per_peer_are_bounded() -> None:
    """Past ``max_watches`` a Watch is answered with a ``Terminated`` that
    says it was refused; a watch the peer holds already is not counted
    again, and a target that stops frees its place."""
    assert default("max_watches") == 100_000
    with trio.fail_after(30):
        async with pair(max_watches=3) as (srv, other):
            targets = [await srv.spawn(Counter) for _ in range(4)]
            raw = await RawPeer.connect(srv)
            me = WireRef("raw", "/user/watcher", 1)
            await raw.send(*(Watch(me, wire(t)) for t in targets))
            (refused,) = await raw.until(lambda env: isinstance(env, Terminated))
            assert isinstance(refused, Terminated) and refused.target == wire(targets[3])
            assert "refused" in refused.reason and "3" in refused.reason
            assert stats(srv, "raw").watched_by == 3
            await raw.send(Watch(me, wire(targets[0])))  # held already
            big = await srv.spawn(Big)
            await raw.roundtrip(big)
            assert stats(srv, "raw").watched_by == 3
            # The other peer's watches are its own.
            send, seen = trio.open_memory_channel[trouper.Terminated](4)
            watcher = await other.spawn(Watcher, send)
            remote = remoting(other).resolve("srv", targets[3].path, targets[3].uid)
            await watcher.tell(remote)
            await eventually(lambda: stats(srv, "other").watched_by == 1)
            # A target that stops frees a place.
            await srv.stop(targets[0])
            (stopped,) = await raw.until(lambda env: isinstance(env, Terminated))
            assert isinstance(stopped, Terminated) and stopped.target == wire(targets[0])
            assert stats(srv, "raw").watched_by == 2
            await raw.send(Watch(me, wire(targets[3])))
            await raw.roundtrip(big)
            assert stats(srv, "raw").watched_by == 3
            await srv.stop(targets[3])
            (last,) = await raw.until(lambda env: isinstance(env, Terminated))
            assert isinstance(last, Terminated) and last.reason == "normal"
            assert await seen.receive() == trouper.Terminated(remote, "normal")


class Watcher(trouper.Actor):
    def __init__(self, out: trio.MemorySendChannel[trouper.Terminated]) -> None:
        self.out = out
        self.target: trouper.ActorRef | None = None

    @trouper.handler
    async def watch(self, msg: trouper.ActorRef) -> None:
        self.target = msg
        self.ctx.watch(msg)

    @trouper.handler
    async def unwatch(self, msg: str) -> None:
        assert self.target is not None
        self.ctx.unwatch(self.target)

    @trouper.handler
    async def terminated(self, msg: trouper.Terminated) -> None:
        self.out.send_nowait(msg)


async def test_watches_resent_after_a_reconnect_are_not_counted_twice() -> None:
    """The watcher's node re-sends its Watches on every new connection; the
    target's node must not count them again (or an Unwatch would never free
    the place, and ``max_watches`` would fill up with reconnects)."""
    with trio.fail_after(30):
        async with pair() as (srv, other):
            await srv.spawn(Counter, name="target")
            target = await other.lookup("target", timeout=5)
            send, seen = trio.open_memory_channel[trouper.Terminated](4)
            watcher = await other.spawn(Watcher, send)
            await watcher.tell(target)
            await eventually(lambda: stats(srv, "other").watched_by == 1)
            peer = remoting(other).peers["srv"]
            for _ in range(3):
                old = peer.conn
                assert old is not None
                old.close_soon("a test breaks the connection")
                await eventually(lambda: peer.conn is not None and peer.conn is not old)  # noqa: B023
                assert await target.ask("report") == []  # behind the re-sent Watch
                assert stats(srv, "other").watched_by == 1
            await watcher.tell("unwatch")
            await eventually(lambda: stats(srv, "other").watched_by == 0)
            await watcher.tell(target)
            await eventually(lambda: stats(srv, "other").watched_by == 1)
            await srv.stop(srv.registry.get("target"))  # type: ignore[arg-type]
            assert await seen.receive() == trouper.Terminated(target, "normal")


async def test_names_per_peer_are_bounded() -> None:
    """Past ``max_names`` the names a peer announces are ignored (logged);
    a node announces only its own actors, and other peers' names are theirs."""
    assert default("max_names") == 100_000
    with trio.fail_after(30):
        async with pair(max_names=3) as (srv, other):
            big = await srv.spawn(Big, name="big")
            raw = await RawPeer.connect(srv)
            mine = {f"raw-{i}": WireRef("raw", f"/user/a{i}", i + 1) for i in range(5)}
            await raw.send(
                RegistryUpdate("raw", mine, {}),
                RegistryUpdate("raw", {"forged": wire(big)}, {}),  # not raw's actor
                RegistryUpdate("other", {"hijack": WireRef("other", "/user/x", 1)}, {}),
            )
            await raw.roundtrip(big)
            assert stats(srv, "raw").names == 3
            for i in range(3):
                assert (await srv.lookup(f"raw-{i}")).node_id == "raw"
            for name in ("raw-3", "raw-4", "forged", "hijack"):
                with pytest.raises(trouper.ActorNotFound):
                    await srv.lookup(name)
            # Removing one makes room for another.
            await raw.send(
                RegistryUpdate("raw", {"raw-3": mine["raw-3"]}, {"raw-0": mine["raw-0"]})
            )
            await raw.roundtrip(big)
            assert (await srv.lookup("raw-3")).path == "/user/a3"
            with pytest.raises(trouper.ActorNotFound):
                await srv.lookup("raw-0")
            # The other peer's names count against its own limit, not raw's;
            # its first is its admin agent's (trouper:admin:other).
            await eventually(lambda: stats(srv, "other").names == 1)
            for i in range(2):
                await other.spawn(Counter, name=f"other-{i}")
            for i in range(2):
                assert (await srv.lookup(f"other-{i}", timeout=5)).node_id == "other"
            assert (stats(srv, "raw").names, stats(srv, "other").names) == (3, 3)


async def test_peers_and_gossip_are_bounded(mock_clock: trio.testing.MockClock) -> None:
    """``max_peers``: gossip cannot make a node dial more nodes than that, and
    a node beyond it is refused (and redials with backoff, not in a tight
    loop) until a known one goes down."""
    mock_clock.autojump_threshold = JUMP
    assert default("max_peers") == 1_000
    with trio.fail_after(60), log_event("refused a connection: node srv knows 3") as refused:
        async with pair(fast=True, max_peers=3) as (srv, other):
            big = await srv.spawn(Big, name="big")
            raw = await RawPeer.connect(srv)
            async with trio.open_nursery() as nursery:
                beating = await nursery.start(raw.heartbeats, FAST["heartbeat_interval"])
                # 200 nodes nobody can reach, all "up": one more link at most.
                fakes = [
                    Member(f"zz-{i:03}", 1, ["tcp://127.0.0.1:1"], "up", 0) for i in range(200)
                ]
                await raw.send(Gossip(fakes))
                await raw.roundtrip(big)
                # (private: links gossip started) 2 peers + 1 dialling = max_peers
                assert len(remoting(srv).linked) == 1
                assert set(remoting(srv).statistics()) == {"other", "raw"}
                async with trouper.open_node(
                    "late", seeds=srv.addresses, cookie=COOKIE, **FAST
                ) as late:
                    await eventually(lambda: "late" in remoting(srv).statistics())
                    async with trouper.open_node(
                        "later", seeds=srv.addresses, cookie=COOKIE, **FAST
                    ) as later:
                        await refused.seen.wait()
                        await trio.sleep(10)  # virtual: redials back off to one per 2 s
                        assert "later" not in remoting(srv).statistics()
                        assert refused.count <= 15, refused.count
                        # raw goes quiet, is declared down, and makes room.
                        beating.cancel()
                        await eventually(lambda: stats(srv, "raw").status == "down")
                        await eventually(
                            lambda: (
                                "later" in remoting(srv).statistics()
                                and stats(srv, "later").connected
                            )
                        )
                        assert await (await later.lookup("big", timeout=5)).ask(5) == bytes(5)
                    assert await (await late.lookup("big", timeout=5)).ask(5) == bytes(5)
            await legit_traffic(srv, other)


async def test_a_connection_cut_after_the_handshake_is_redialled_with_backoff(
    mock_clock: trio.testing.MockClock,
) -> None:
    """A link whose connections end right after the handshake (here the
    dialler refuses them itself: it declared that incarnation down) redials
    with backoff, not twenty full handshakes a second for ever."""
    mock_clock.autojump_threshold = JUMP
    with trio.fail_after(60):
        async with pair() as (_, other):
            with log_event("was declared down") as refused:
                remoting(other).peers["srv"].down("a test declares it down")
                await trio.sleep(10)  # virtual
            assert 1 <= refused.count <= 15, refused.count


async def test_spawns_and_stops_in_progress_per_peer_are_bounded() -> None:
    """Past ``max_peer_requests`` spawns and stops in progress, a peer's
    request is refused at once (``MailboxFull``, try again); those in
    progress complete, and other peers' requests are their own."""
    assert default("max_peer_requests") == 64
    Held.start, Held.handle = trio.Event(), trio.Event()
    with trio.fail_after(30):
        async with pair(max_peer_requests=2, allow_spawn=["test_remote_bounds:*"]) as (srv, other):
            raw = await RawPeer.connect(srv)
            spawn = [Spawn(i, "test_remote_bounds:Held", payload([[], {}])) for i in range(1, 5)]
            await raw.send(*spawn)
            refusals = await raw.until(lambda env: isinstance(env, Failure), count=2)
            assert sorted(f.id for f in refusals if isinstance(f, Failure)) == [3, 4]
            for refusal in refusals:
                assert isinstance(refusal, Failure) and refusal.error_code == "mailbox-full"
                assert "too many requests in progress" in refusal.message
            assert stats(srv, "raw").requests == 2
            # Another peer's spawn is not held up by raw's.
            counter = await other.spawn(Counter, on="srv")
            assert await counter.ask("report") == []
            Held.start.set()
            done = await raw.until(lambda env: isinstance(env, SpawnResult), count=2)
            assert sorted(r.id for r in done if isinstance(r, SpawnResult)) == [1, 2]
            assert stats(srv, "raw").requests == 0
            await raw.send(Spawn(5, "test_remote_bounds:Held", payload([[], {}])))
            await raw.until(lambda env: isinstance(env, SpawnResult) and env.id == 5)


async def closed(stream: trio.SocketStream) -> bool:
    """Whether the other end hung up (after sending nothing at all)."""
    try:
        data = await stream.receive_some(65536)
    except trio.BrokenResourceError:
        return True
    return data == b""


def tcp(node: trouper.Node) -> tuple[str, int]:
    host, port = node.addresses[0].removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


# ---------------------------------------------- 5. connections in the handshake


async def test_connections_in_the_handshake_are_bounded(mock_clock: trio.testing.MockClock) -> None:
    """Past ``max_handshakes`` connections still in the handshake, a new one
    is closed at once; a silent one is closed after ``handshake_timeout``;
    a legitimate node gets in as soon as a place frees."""
    mock_clock.autojump_threshold = JUMP
    assert (default("max_handshakes"), default("handshake_timeout")) == (64, 10.0)
    with trio.fail_after(60):
        async with pair(max_handshakes=4, handshake_timeout=5.0) as (srv, other):
            await srv.spawn(Big, name="big")
            silent = [await trio.open_tcp_stream(*tcp(srv)) for _ in range(4)]
            # (private: the count has no statistic of its own)
            await eventually(lambda: remoting(srv).handshaking == 4)
            opened = trio.current_time()
            extra = await trio.open_tcp_stream(*tcp(srv))
            assert await closed(extra)
            assert trio.current_time() - opened < 1.0  # at once, not at the timeout
            async with trouper.open_node("late", cookie=COOKIE) as late:
                with pytest.raises(trouper.HandshakeFailed):
                    await late.connect(srv.addresses[0], timeout=5)
                await silent[0].aclose()
                await eventually(lambda: remoting(srv).handshaking == 3)
                assert await late.connect(srv.addresses[0], timeout=5) == "srv"
                for stream in silent[1:]:
                    assert await closed(stream)
                assert 5.0 <= trio.current_time() - opened <= 6.0
                assert remoting(srv).handshaking == 0
                assert await (await late.lookup("big", timeout=5)).ask(3) == bytes(3)
            await legit_traffic(srv, other)


# ------------------------------------------------ 6. the pre-authentication cap


async def test_a_stranger_cannot_make_a_node_buffer_a_big_frame() -> None:
    """Before authenticating, a frame announced above ``max_handshake_frame``
    cuts the connection off at once: the node does not wait for, nor keep,
    its body."""
    assert default("max_handshake_frame") == 64 * KIB
    with pytest.raises(trouper.ConfigurationError, match="max_handshake_frame"):
        RemoteConfig(cookie=b"c", max_frame_size=32 * KIB)
    # handshake_timeout is long: a close within the test's deadline is the cap's.
    with trio.fail_after(20):
        async with (
            pair(handshake_timeout=60.0) as (srv, other),
            trouper.open_node(
                "small",
                listen="tcp://127.0.0.1:0",
                cookie=COOKIE,
                max_handshake_frame=KIB,
                handshake_timeout=60.0,
            ) as small,
        ):
            for node, cap in ((srv, 64 * KIB), (small, KIB)):
                stream = await trio.open_tcp_stream(*tcp(node))
                await stream.send_all(struct.pack(">I", cap + 1) + b"\x91")
                assert await closed(stream)  # no Goodbye to a stranger
                await stream.aclose()
            assert remoting(srv).handshaking == remoting(small).handshaking == 0
            # A Hello is a few dozen bytes: real nodes get in under a 1 KiB cap.
            assert await other.connect(small.addresses[0], timeout=5) == "small"
            await legit_traffic(srv, other)


async def test_frames_right_behind_the_handshake_may_be_full_size() -> None:
    """The first thing each side sends is its registry snapshot; with many
    names it is far above 64 KiB, and is read under ``max_frame_size``."""
    long = "n" * 200
    with trio.fail_after(30):
        async with (
            trouper.open_node("srv", listen="tcp://127.0.0.1:0", cookie=COOKIE) as srv,
            trouper.open_node("other", cookie=COOKIE) as other,
        ):
            for node in (srv, other):
                for i in range(400):
                    await node.spawn(Counter, name=f"{long}-{node.id}-{i}")
                snapshot = msgspec.msgpack.encode(remoting(node).registry_snapshot())
                assert len(snapshot) > 64 * KIB + 8 * KIB
            assert await other.connect(srv.addresses[0], timeout=5) == "srv"
            await eventually(
                lambda: (
                    "other" in remoting(srv).statistics()
                    # and each node's admin agent (trouper:admin:<id>)
                    and stats(srv, "other").names == 401
                    and stats(other, "srv").names == 401
                )
            )
            there = await other.lookup(f"{long}-srv-399")
            assert await there.ask("report") == []
            assert (await srv.lookup(f"{long}-other-0")).node_id == "other"
            assert stats(srv, "other").connected and stats(other, "srv").connected
            assert remoting(srv).bad_messages == remoting(other).bad_messages == 0


# --------------------------------------------- 7. mailboxes of remote spawns


async def test_remote_spawns_are_held_to_max_remote_mailbox() -> None:
    """A remote spawn may not ask for a mailbox above ``max_remote_mailbox``
    (nor below 1); up to it, the actor gets the mailbox it asked for."""
    assert default("max_remote_mailbox") == 100_000
    Held.start, Held.handle = trio.Event(), trio.Event()
    Held.start.set()
    with trio.fail_after(30):
        async with pair(allow_spawn=["test_remote_bounds:*"], max_remote_mailbox=8) as (srv, other):
            with pytest.raises(trouper.SpawnRefused, match="max_remote_mailbox"):
                await other.spawn(Held, on="srv", mailbox_size=9)
            raw = await RawPeer.connect(srv)
            await raw.send(Spawn(1, "test_remote_bounds:Held", payload([[], {}]), None, 0))
            (zero,) = await raw.until(lambda env: isinstance(env, Failure))
            assert isinstance(zero, Failure) and "outside 1..8" in zero.message
            ref = await other.spawn(Held, on="srv", mailbox_size=8)
            local = remoting(srv).resolve("srv", ref.path, ref.uid)
            local.tell_nowait(0)
            await trio.testing.wait_all_tasks_blocked()  # it holds 0
            for n in range(1, 9):
                local.tell_nowait(n)
            with pytest.raises(trouper.MailboxFull):
                local.tell_nowait(9)
            Held.handle.set()
            assert await ref.ask(10) == 10
            await legit_traffic(srv, other)


# ------------------------------------------- 8. tracebacks in error replies


@pytest.mark.parametrize("tracebacks", [False, True])
async def test_stream_errors_carry_tracebacks_only_when_asked(tracebacks: bool) -> None:
    """``remote_tracebacks`` (off by default) governs the traceback text of
    the error a ``StreamEnd`` carries too, not only that of a ``Failure``."""
    assert default("remote_tracebacks") is False
    with trio.fail_after(20):
        async with pair(remote_tracebacks=tracebacks) as (srv, other):
            await srv.spawn(Faulty, name="faulty")
            ref = await other.lookup("faulty", timeout=5)
            got: list[int] = []
            with pytest.raises(trouper.RemoteError) as mid_stream:
                async with ref.stream(7) as items:
                    async for item in items:
                        got.append(item)
            assert got == [7]
            with pytest.raises(trouper.RemoteError) as plain:
                async with ref.stream("x") as items:
                    async for _ in items:
                        pass
            for info, where in ((mid_stream, "stream broke"), (plain, "plain broke")):
                err = info.value
                assert (err.type_name, err.message, err.node) == ("ValueError", where, "srv")
                assert ("raise ValueError" in err.traceback) is tracebacks, err.traceback
            assert await ref.ask(1.5) == 1.5  # the actor (restarted) and the link carry on


# --------------------------------------------- 9. credit and parked messages


async def test_tells_beyond_credit_are_dead_letters_and_parked_messages_are_bounded() -> None:
    """A tell beyond ``tell_window`` (the peer broke the credit protocol) is
    dead-lettered, not parked; past ``max_parked`` messages parked behind
    full mailboxes, reading from that peer pauses until they drain, and
    everything else arrives, in order."""
    assert (default("tell_window"), default("max_parked")) == (1024, 100_000)
    with trio.fail_after(30):
        async with pair(tell_window=4, max_parked=6) as (srv, other):
            opened, a_holds, b_holds = trio.Event(), trio.Event(), trio.Event()
            a = await srv.spawn(Gate, opened, a_holds, mailbox_size=1)
            b = await srv.spawn(Gate, opened, b_holds, mailbox_size=1)
            counter = await srv.spawn(Counter)
            big = await srv.spawn(Big)
            raw = await RawPeer.connect(srv)

            def tell(to: trouper.ActorRef, n: int) -> Tell:
                return Tell(wire(to), "builtins:int", payload(n))

            async with srv.dead_letters.subscribe() as letters:
                await raw.send(tell(a, 0))
                await a_holds.wait()
                # 1 into the mailbox, 4 parked (the window), 2 beyond it.
                await raw.send(*(tell(a, n) for n in range(1, 8)))
                dead = [await letters.receive() for _ in range(2)]
            assert [d.message for d in dead] == [6, 7]
            assert all("beyond its credit" in d.reason for d in dead)
            held = stats(srv, "raw")
            assert (held.parked, held.parked_targets, held.paused) == (4, 1, False)
            await raw.send(tell(b, 0))
            await b_holds.wait()
            await raw.send(tell(b, 1), tell(b, 2), tell(b, 3))  # 2 more parked: 6
            await eventually(lambda: stats(srv, "raw").paused)
            assert stats(srv, "raw").parked == 6
            await raw.send(tell(counter, 9))  # read only once they drain
            await legit_traffic(srv, other)
            opened.set()
            await raw.roundtrip(big)
            drained = stats(srv, "raw")
            assert (drained.parked, drained.parked_targets, drained.paused) == (0, 0, False)
            assert await a.ask("report") == [0, 1, 2, 3, 4, 5]
            assert await b.ask("report") == [0, 1, 2, 3]
            assert await counter.ask("report") == [9]
            assert status_of(srv, "raw") == ("up", 1)


# ------------------------------------------- 10. a bad message fails alone


async def test_a_bad_message_fails_only_itself_beyond_tells_and_asks() -> None:
    """Completes tests/test_remote.py's test of the same name: a stream open,
    a spawn, a watch, a ref inside a payload, answers nobody waits for, and
    the peer's side (a reply or a stream item that does not decode) each fail
    alone, naming the type and the reason; the link stays up throughout."""
    with trio.fail_after(30):
        async with pair(allow_spawn=["test_remote_bounds:*"]) as (srv, other):
            numbers = await srv.spawn(Numbers)
            carrier = await srv.spawn(Carrier)
            big = await srv.spawn(Big)
            raw = await RawPeer.connect(srv)
            nowhere = WireRef("srv", "/user/nobody", 7)
            me = WireRef("raw", "/user/me", 1)
            carry = f"{__name__}:Carry"
            await raw.send(
                StreamOpen(1, wire(numbers), "evil:Type", payload(1), 4),
                StreamOpen(2, wire(numbers), "builtins:int", payload("three"), 4),
                StreamOpen(3, nowhere, "builtins:int", payload(3), 4),
                Ask(4, wire(carrier), carry, payload({"to": ["srv", "/user/x"]})),
                Spawn(5, "test_remote_bounds:Held", payload("not [args, kwargs]")),
                Watch(me, nowhere),
                # Answers to nothing this node asked: ignored.
                Reply(999, "builtins:int", payload(1)),
                Failure(998, "ValueError", "nobody asked"),
                StreamItem(997, "builtins:int", payload(1)),
                StreamEnd(996),
                StreamCredit(995, 1),
                StreamCancel(994),
                Terminated(nowhere, "normal"),
                StreamOpen(6, wire(numbers), "builtins:int", payload(3), 4),
                Ask(7, wire(carrier), carry, payload({"to": ["srv", "/user/x", 1]})),
            )
            answers: dict[int, Envelope] = {}
            items: list[int] = []
            watched: list[Terminated] = []
            while len(answers) < 7 or not watched:
                envelopes = await raw.receive()
                assert envelopes is not None
                for env in envelopes:
                    assert not isinstance(env, Goodbye), env
                    if isinstance(env, StreamItem):
                        items.append(msgspec.msgpack.decode(env.payload))
                    elif isinstance(env, StreamEnd | Failure | Reply | SpawnResult):
                        answers[env.id] = env
                    elif isinstance(env, Terminated):
                        watched.append(env)
            unknown, unfit, dead, bad_ref, bad_args, fine, good_ref = (
                answers[i] for i in range(1, 8)
            )
            for end in (unknown, unfit, dead):
                assert isinstance(end, StreamEnd) and end.error is not None
            assert isinstance(unknown, StreamEnd) and unknown.error is not None
            assert unknown.error.error_code == "unhandled-message"
            assert "'evil:Type'" in unknown.error.message
            assert "unknown message type" in unknown.error.message
            assert isinstance(unfit, StreamEnd) and unfit.error is not None
            assert (
                "'builtins:int'" in unfit.error.message and "Expected `int`" in unfit.error.message
            )
            assert isinstance(dead, StreamEnd) and dead.error is not None
            assert dead.error.error_code == "actor-dead"
            assert isinstance(bad_ref, Failure) and bad_ref.error_code == "unhandled-message"
            assert carry in bad_ref.message and "ActorRef" in bad_ref.message
            assert isinstance(bad_args, Failure) and bad_args.error_code == "spawn-refused"
            assert "bad arguments" in bad_args.message
            assert isinstance(fine, StreamEnd) and fine.error is None and items == [0, 1, 2]
            assert isinstance(good_ref, Reply)
            assert msgspec.msgpack.decode(good_ref.payload) == "/user/x"
            assert watched == [Terminated(nowhere, "no such actor")]

            # This node asks, the raw peer answers badly: that ask alone fails.
            ghost = remoting(srv).resolve("raw", "/user/ghost", 1)

            async def answer(type_name: str, value: Any) -> None:
                (ask,) = await raw.until(lambda env: isinstance(env, Ask))
                assert isinstance(ask, Ask)
                await raw.send(Reply(ask.id, type_name, payload(value)))

            for type_name, value in (("builtins:int", "one"), ("evil:Type", 1)):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(answer, type_name, value)
                    with pytest.raises(trouper.UnhandledMessage, match=type_name):
                        await ghost.ask(1)
            async with trio.open_nursery() as nursery:

                async def produce() -> None:
                    (opened,) = await raw.until(lambda env: isinstance(env, StreamOpen))
                    assert isinstance(opened, StreamOpen)
                    await raw.send(
                        StreamItem(opened.id, "builtins:int", payload(0)),
                        StreamItem(opened.id, "evil:Type", payload(1)),
                    )
                    (cancel,) = await raw.until(lambda env: isinstance(env, StreamCancel))
                    assert isinstance(cancel, StreamCancel) and cancel.id == opened.id

                nursery.start_soon(produce)
                got: list[int] = []
                with pytest.raises(trouper.UnhandledMessage, match="evil:Type"):
                    async with ghost.stream(2) as stream:
                        async for item in stream:
                            got.append(item)
                assert got == [0]
            await raw.roundtrip(big)
            assert stats(srv, "raw").connected and status_of(srv, "raw") == ("up", 1)
            await legit_traffic(srv, other)


# ----------------------------------------- 11. a reply too large to send


async def test_a_reply_too_large_fails_that_ask_alone() -> None:
    """The replying side's ``max_frame_size`` bounds its replies and stream
    items: one too large fails that ask (or ends that stream) with
    ``FrameTooLarge``, and everything else on the link carries on."""
    assert default("max_frame_size") == 16 * MIB
    limit = 64 * KIB
    with trio.fail_after(30):
        async with pair(max_frame_size=limit) as (srv, other):
            await srv.spawn(Big, name="big")
            await srv.spawn(Chunks, name="chunks")
            big = await other.lookup("big", timeout=5)
            results: dict[int, Any] = {}

            async def ask(size: int) -> None:
                try:
                    results[size] = await big.ask(size)
                except trouper.FrameTooLarge as exc:
                    results[size] = exc

            async with trio.open_nursery() as nursery:
                for size in (10, 2 * limit, 20, limit - 2 * KIB):
                    nursery.start_soon(ask, size)
            too_large = results.pop(2 * limit)
            assert isinstance(too_large, trouper.FrameTooLarge)
            assert "max_frame_size" in str(too_large) and "reply" in str(too_large)
            assert results == {n: bytes(n) for n in (10, 20, limit - 2 * KIB)}
            chunks = await other.lookup("chunks", timeout=5)
            got: list[int] = []
            with pytest.raises(trouper.FrameTooLarge, match="stream item"):
                async with chunks.stream([1, 2, 2 * limit, 3]) as items:
                    async for chunk in items:
                        got.append(len(chunk))
            assert got == [1, 2]
            async with chunks.stream([4, 5]) as items:
                assert [len(c) async for c in items] == [4, 5]
            assert stats(other, "srv").connected and status_of(other, "srv") == (
                "up",
                stats(other, "srv").incarnation,
            )
            await legit_traffic(srv, other)
