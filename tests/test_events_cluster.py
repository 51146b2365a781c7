"""Cluster-wide events, between real nodes over TCP on 127.0.0.1.

One ``Publish`` per interested node per publish (counted by the peer
statistics, not timed), fanned out there; nodes without subscribers get
nothing; a node that goes down stops counting; a peer that floods topics is
held to ``max_event_topics``; a peer that does not read never makes the
publisher wait. States another node reaches are polled with a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

import trouper
from raw_peer import dial_handshaken
from trouper.protocols import (
    Ask,
    FrameDecoder,
    FrameEncoder,
    Interest,
    Publish,
    Reply,
    WireRef,
)
from trouper.remote import PeerStatistics, Remoting

COOKIE = b"events-cookie"


@trouper.message
class Price(msgspec.Struct, frozen=True):
    symbol: str
    price: float


class Unregistered(msgspec.Struct, frozen=True):
    n: int


class Watcher(trouper.Actor):
    """An actor that subscribes to a topic and keeps what it gets."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.seen: list[Price] = []

    async def on_start(self) -> None:
        self.ctx.subscribe(self.topic)

    @trouper.handler
    async def price(self, msg: Price) -> None:
        self.seen.append(msg)

    @trouper.handler
    async def report(self, msg: str) -> list[Price]:
        return self.seen


async def eventually(predicate: Callable[[], bool]) -> None:
    """Poll a state another node reaches (callers bound it with fail_after)."""
    while True:
        if predicate():
            return
        await trio.sleep(0.005)


def peer_stats(node: trouper.Node, peer: str) -> PeerStatistics:
    layer = node.remote
    assert isinstance(layer, Remoting)
    return layer.statistics()[peer]


@asynccontextmanager
async def cluster(n: int, **options: Any) -> AsyncIterator[list[trouper.Node]]:
    """``n`` nodes in this process, all seeded with the first."""
    async with trouper.open_node(
        "n0", listen="tcp://127.0.0.1:0", cookie=COOKIE, **options
    ) as first:
        nodes = [first]
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def run(i: int, *, task_status: trio.TaskStatus[None]) -> None:
                async with trouper.open_node(
                    f"n{i}",
                    listen="tcp://127.0.0.1:0",
                    seeds=first.addresses,
                    cookie=COOKIE,
                    **options,
                ) as node:
                    nodes.append(node)
                    task_status.started()
                    await done.wait()

            for i in range(1, n):
                await nursery.start(run, i)
            for node in nodes:
                await node.wait_for_members(n, timeout=10)
            nodes.sort(key=lambda node: node.id)
            try:
                yield nodes
            finally:
                done.set()


async def test_one_message_per_node_per_publish_fanned_out_there() -> None:
    with trio.fail_after(20):
        async with cluster(3) as (a, b, c):
            async with (
                b.subscribe("prices") as b1,
                b.subscribe("prices") as b2,
                b.subscribe("prices") as b3,
                a.subscribe("prices") as a1,
            ):
                await eventually(lambda: a.subscribers("prices") == 4)
                await eventually(lambda: c.subscribers("prices") == 4)
                for i in range(5):
                    assert a.publish("prices", Price("ACME", i)) == 4
                for sub in (b1, b2, b3, a1):
                    assert [(await sub.receive()).price for _ in range(5)] == list(range(5))
                # Three subscribers on b, one envelope per publish; c has
                # none and gets nothing.
                assert peer_stats(a, "n1").events_sent == 5
                assert peer_stats(a, "n2").events_sent == 0
                await eventually(lambda: peer_stats(b, "n0").events_received == 5)
                assert peer_stats(c, "n0").events_received == 0
                stats = b.event_statistics()
                assert (stats.received, stats.delivered, stats.published) == (5, 15, 0)
                assert a.event_statistics().sent == 5
                # c publishes too: to a and b, once each.
                assert c.publish("prices", Price("C", 1.0)) == 4
                assert (await b1.receive()).symbol == (await a1.receive()).symbol == "C"
                assert peer_stats(c, "n1").events_sent == peer_stats(c, "n0").events_sent == 1
            await eventually(lambda: a.subscribers("prices") == 0)
            assert a.publish("prices", Price("late", 0)) == 0
            assert peer_stats(a, "n1").events_sent == 5  # nobody left there


async def test_actors_on_three_nodes_subscribe_with_ctx() -> None:
    with trio.fail_after(20):
        async with cluster(3) as nodes:
            refs = [await node.spawn(Watcher, "ticks") for node in nodes]
            for node in nodes:
                await eventually(lambda node=node: node.subscribers("ticks") == 3)  # type: ignore[misc]
            for i, node in enumerate(nodes):
                assert node.publish("ticks", Price(node.id, i)) == 3
            for ref in refs:
                while len(got := await ref.ask("report")) < 3:
                    pass
                assert sorted(p.symbol for p in got) == ["n0", "n1", "n2"]
            await nodes[1].stop(refs[1])
            await eventually(lambda: nodes[0].subscribers("ticks") == 2)
            assert nodes[0].publish("ticks", Price("x", 0)) == 2
            assert peer_stats(nodes[0], "n1").events_sent == 1  # before the stop only


async def test_a_subscriber_node_going_down_is_no_longer_counted() -> None:
    with trio.fail_after(30):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            a.subscribe("news") as mine,
        ):
            async with trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b:
                await b.spawn(Watcher, "news")
                await b.spawn(Watcher, "news")
                await eventually(lambda: a.subscribers("news") == 3)
                assert a.publish("news", Price("up", 1)) == 3
            # b left the cluster: its subscribers no longer count
            await eventually(lambda: a.subscribers("news") == 1)
            assert [m.status for m in a.members() if m.node_id == "b"] == ["down"]
            assert a.publish("news", Price("down", 2)) == 1
            assert [(await mine.receive()).symbol for _ in range(2)] == ["up", "down"]
            assert a.event_statistics().remote_subscribers == 0


@pytest.mark.parametrize("policy", ["drop-newest", "drop-oldest", "disconnect"])
async def test_policies_apply_where_the_subscriber_is(policy: str) -> None:
    """The publisher counts what b announced; b's policy decides what its
    subscriber keeps, and b counts the drops (a disconnect is announced)."""
    with trio.fail_after(20):
        async with cluster(2) as (a, b), b.subscribe("t", buffer=2, policy=policy) as sub:
            await eventually(lambda: a.subscribers("t") == 1)
            assert [a.publish("t", Price("p", i)) for i in range(5)] == [1] * 5
            await eventually(lambda: b.event_statistics().received == 5)
            stats = b.event_statistics()
            got: list[float] = []
            if policy == "disconnect":
                with pytest.raises(trouper.SubscriberOverflow):
                    async for event in sub:
                        got.append(event.price)
                assert (stats.dropped, stats.disconnected) == (1, 1)
                await eventually(lambda: a.subscribers("t") == 0)
                assert a.publish("t", Price("p", 5)) == 0
            else:
                got = [(await sub.receive()).price for _ in range(2)]
                assert (stats.dropped, stats.disconnected) == (3, 0)
            assert (
                got == {"drop-newest": [0, 1], "drop-oldest": [3, 4], "disconnect": [0, 1]}[policy]
            )
            assert sub.statistics().dropped == stats.dropped
            assert a.event_statistics().dropped == 0


async def test_non_string_topics_stay_local_and_bad_messages_fail_the_publish() -> None:
    with trio.fail_after(20):
        async with (
            cluster(2) as (a, b),
            b.subscribe(("tuple", 1)) as tuples,
            b.subscribe("t") as strings,
        ):
            await eventually(lambda: a.subscribers("t") == 1)
            assert a.subscribers(("tuple", 1)) == 0
            assert a.publish(("tuple", 1), Price("x", 0)) == 0
            assert b.publish(("tuple", 1), Price("x", 0)) == 1
            assert (await tuples.receive()).symbol == "x"
            with pytest.raises(trouper.ConfigurationError, match=r"topic 't'.*not a registered"):
                a.publish("t", Unregistered(1))
            async with a.subscribe("t") as local:
                with pytest.raises(trouper.ConfigurationError):
                    a.publish("t", Unregistered(2))
                with pytest.raises(trio.WouldBlock):
                    local.receive_nowait()  # nothing delivered anywhere
            assert a.publish("t", Price("ok", 1)) == 1
            assert (await strings.receive()).symbol == "ok"
            assert peer_stats(a, "n1").events_sent == 1


# ------------------------------------------------------------ hostile peers


class RawPeer:
    """An authenticated peer made of a bare TCP stream, to misbehave."""

    def __init__(self, stream: trio.SocketStream, decoder: FrameDecoder) -> None:
        self.stream = stream
        self.decoder = decoder
        self.encoder = FrameEncoder()

    @classmethod
    async def connect(cls, node: trouper.Node, node_id: str = "raw") -> RawPeer:
        stream, decoder = await dial_handshaken(node.addresses[0], node_id, COOKIE)
        layer = node.remote
        assert isinstance(layer, Remoting)
        await eventually(lambda: node_id in layer.statistics())
        return cls(stream, decoder)

    async def send(self, *envelopes: Any) -> None:
        await self.stream.send_all(self.encoder.encode(list(envelopes)))

    async def roundtrip(self, target: trouper.ActorRef) -> None:
        """An ask and its reply: everything sent before it was handled."""
        wire = WireRef(target.node_id, target.path, target.uid)
        await self.send(Ask(99, wire, "builtins:str", msgspec.Raw(msgspec.msgpack.encode("x"))))
        while True:
            data = await self.stream.receive_some(65536)
            assert data, "the node hung up"
            if any(isinstance(e, Reply) and e.id == 99 for e in self.decoder.feed(data)):
                return

    async def interest_until(self, want: Callable[[Interest], bool]) -> list[Interest]:
        """The ``Interest`` envelopes read until one satisfies ``want``."""
        seen: list[Interest] = []
        while True:
            data = await self.stream.receive_some(65536)
            assert data, "the node hung up"
            for env in self.decoder.feed(data):
                if isinstance(env, Interest):
                    seen.append(env)
                    if want(env):
                        return seen


class Echo(trouper.Actor):
    @trouper.handler
    async def echo(self, msg: str) -> str:
        return msg


async def test_a_peer_flooding_topics_is_held_to_max_event_topics() -> None:
    with trio.fail_after(20):
        async with cluster(2, max_event_topics=10) as (a, b):
            echo = await a.spawn(Echo)
            raw = await RawPeer.connect(a)
            flood = {f"topic-{i}": 1 for i in range(100)}
            await raw.send(
                Interest(flood), Interest({"y" * 256: 1}), Interest({"topic-0": 0, "new": 2})
            )
            await raw.roundtrip(echo)
            assert peer_stats(a, "raw").event_topics == 10  # 9 of the flood, then "new"
            assert a.subscribers("new") == 2
            assert a.subscribers("topic-99") == 0
            # a snapshot replaces the table; the legitimate peer is unaffected
            await raw.send(Interest({"only": 1}, snapshot=True))
            await raw.roundtrip(echo)
            assert peer_stats(a, "raw").event_topics == 1
            assert a.event_statistics().remote_topics == 1
            async with b.subscribe("legit") as legit:
                await eventually(lambda: a.subscribers("legit") == 1)
                assert a.publish("legit", Price("fine", 1)) == 1
                assert (await legit.receive()).symbol == "fine"
            # a Publish of an unknown type fails alone
            async with a.subscribe("only") as only:
                await raw.send(Publish("only", "no:Such", msgspec.Raw(b"\xc0")))
                await raw.send(Publish("only", "trouper:PoisonPill", msgspec.Raw(b"\x80")))
                await raw.send(Publish("only", "builtins:int", msgspec.Raw(b"\x07")))
                assert await only.receive() == 7
            assert peer_stats(a, "raw").events_received == 3


async def test_a_peer_that_does_not_read_never_makes_the_publisher_wait() -> None:
    """Its outbox fills to ``max_outbox_bytes``; past that its events are
    dropped (counted), the publisher goes on, and others still get theirs."""
    limit = 256 * 1024
    with trio.fail_after(30):
        async with cluster(2, max_outbox_bytes=limit) as (a, b):
            raw = await RawPeer.connect(a)
            await raw.send(Interest({"big": 1}))
            async with (
                a.subscribe("big", buffer=100_000) as mine,
                b.subscribe("big", buffer=100_000) as theirs,
            ):
                await eventually(lambda: a.subscribers("big") == 3)
                chunk = b"x" * 16 * 1024
                sent = 0
                while peer_stats(a, "raw").events_dropped == 0:
                    assert a.publish("big", chunk) >= 1  # never waits
                    sent += 1
                    assert peer_stats(a, "raw").outbox_bytes <= limit + len(chunk) + 1024
                    await trio.lowlevel.checkpoint()  # let the writers run
                for _ in range(sent):
                    assert mine.receive_nowait() == chunk
                # b reads: it gets every event its outbox had room for
                to_b = peer_stats(a, "n1")
                assert to_b.events_sent + to_b.events_dropped == sent
                for _ in range(to_b.events_sent):
                    assert await theirs.receive() == chunk
            stats = a.event_statistics()
            assert stats.remote_dropped == peer_stats(a, "raw").events_dropped + to_b.events_dropped
            assert stats.sent + stats.remote_dropped == 2 * sent


async def test_interest_is_a_snapshot_then_changes_gathered_per_tick() -> None:
    """A connection starts with a snapshot; a hundred subscriptions made in
    one go are announced in one envelope, and their end in another."""
    with trio.fail_after(20):
        async with cluster(1) as (a,), a.subscribe("before") as _:
            raw = await RawPeer.connect(a)
            first = await raw.interest_until(lambda env: env.snapshot)
            assert first[-1].counts == {"before": 1}
            async with AsyncExitStack() as stack:
                for i in range(100):
                    await stack.enter_async_context(a.subscribe(f"t{i % 2}"))
                got = await raw.interest_until(lambda env: "t0" in env.counts)
                assert [env.counts for env in got] == [{"t0": 50, "t1": 50}]
            got = await raw.interest_until(lambda env: "t0" in env.counts)
            assert [env.counts for env in got] == [{"t0": 0, "t1": 0}]
