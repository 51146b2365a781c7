"""What ``test_hostile_peer`` found, one focused test each: a peer (hostile,
or merely unlucky) could stop a node's system actors, crash-loop its remote
layer with gossip, keep links and tasks alive for ever, or leave a stream's
consumer waiting for ever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import trio

import trouper
from hostile_client import HostileClient
from trouper.protocols import (
    Ask,
    Failure,
    Goodbye,
    Gossip,
    Member,
    StreamOpen,
    Tell,
    WireRef,
    default_registry,
)
from trouper.remote import PeerStatistics, Remoting

COOKIE = b"regressions"
U64_MAX = 2**64 - 1


@trouper.message
class Quiet(msgspec.Struct):
    """Stream one item, then wait, as a subscription to a quiet topic does."""


class Subscriber(trouper.Actor):
    def __init__(self) -> None:
        self.closed = trio.Event()
        self.gate = trio.Event()

    @trouper.handler
    async def quiet(self, msg: Quiet) -> AsyncIterator[int]:
        try:
            yield 1
            await trio.Event().wait()
        finally:
            self.closed.set()

    @trouper.handler
    async def hold(self, msg: int) -> int:
        await self.gate.wait()
        return msg


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll a public statistic (the state is on the other side of a socket)."""
    try:
        with trio.fail_after(timeout):
            while True:
                if predicate():
                    return
                await trio.sleep(0.01)
    except trio.TooSlowError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


def stats(node: trouper.Node, peer: str) -> PeerStatistics:
    remoting = node.remote
    assert isinstance(remoting, Remoting)
    return remoting.statistics()[peer]


async def attached(node: trouper.Node, client: HostileClient) -> None:
    """The node serves the client (its handshake ends before that)."""
    remoting = node.remote
    assert isinstance(remoting, Remoting)
    await eventually(
        lambda: (
            client.node_id in remoting.statistics()
            and remoting.statistics()[client.node_id].connected
        ),
        "the node serves the client",
    )


def wire(ref: trouper.ActorRef) -> WireRef:
    return WireRef(ref.node_id, ref.path, ref.uid)


def raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.msgpack.encode(value))


def links(node: trouper.Node) -> list[str]:
    """The links the cluster actor started for nodes met through gossip."""
    found = []
    for path in node.kernel.paths:
        cell = node.kernel.cell_at(path)
        if path.startswith("/system/remote/cluster/") and cell is not None:
            found.append(getattr(cell.instance, "peer_id", None) or path)
    return found


async def test_a_peer_cannot_poison_the_nodes_own_actors() -> None:
    """A ``PoisonPill`` from a peer stops an actor under /user (as a remote
    ``Stop`` may), never a guardian or a system actor: before, one told to
    ``/system/remote`` stopped the node's whole remote layer."""
    with trio.fail_after(20):
        async with trouper.open_node("node", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node:
            victim = await node.spawn(Subscriber, name="victim")
            system = {}
            for path in ("/user", "/system", "/system/remote", "/system/remote/cluster"):
                cell = node.kernel.cell_at(path)
                assert cell is not None
                system[path] = cell.ref.uid
            async with trio.open_nursery() as nursery:
                client = HostileClient(node.addresses[0], "peer", COOKIE, nursery)
                await client.connect()
                await attached(node, client)
                pill = raw({})
                refs = [WireRef("node", path, uid) for path, uid in system.items()]
                await client.send(
                    [Tell(ref, "trouper:PoisonPill", pill) for ref in refs]
                    + [Ask(7, refs[2], "trouper:PoisonPill", pill)]
                    + [StreamOpen(8, refs[3], "trouper:PoisonPill", pill, 1)]
                    + [Ask(9, wire(victim), "trouper:PoisonPill", pill)]
                )
                await client.wait_for(lambda: client.answer(9) is not None, 10, "the victim")
                await client.wait_for(lambda: 8 in client.stream_ends, 10, "the stream")
                refused = client.answer(7)
                assert isinstance(refused, Failure)
                assert "cannot be stopped from another node" in refused.message
                for path, uid in system.items():
                    assert node.kernel.cell_at(path, uid) is not None, path
                # /user/victim is the peer's to stop (the reply comes first).
                await eventually(lambda: node.kernel.cell_at(victim.path) is None, "the victim")
                await client.close()
                nursery.cancel_scope.cancel()
            assert node.stats().restarts == 0


async def test_gossip_of_addresses_the_node_cannot_dial() -> None:
    """Gossip names nodes at addresses that do not parse, use a scheme this
    node lacks, or refuse connections. Before, the first two crash-looped the
    links until the cluster actor failed, and the last was redialled for
    ever; now each link gives up, and nothing restarts."""
    with trio.fail_after(30):
        async with trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node:
            cluster = node.kernel.cell_at("/system/remote/cluster")
            assert cluster is not None
            async with trio.open_nursery() as nursery:
                client = HostileClient(node.addresses[0], "peer", COOKIE, nursery)
                await client.connect()
                await attached(node, client)
                addresses = ("bogus://127.0.0.1:1", "not a url", "tcp://127.0.0.1:1")
                members = [Member(f"z{i}", 1, [url], "up", 0) for i, url in enumerate(addresses)]
                await client.send([Gossip(members)])
                # Dials are handled in order: the unreachable one comes last.
                await eventually(lambda: "z2" in links(node), "a link to the last member")
                await eventually(lambda: not links(node), "the links gave up")
                assert node.kernel.cell_at("/system/remote/cluster", cluster.ref.uid) is not None
                assert node.stats().restarts == 0
                await client.close()
                nursery.cancel_scope.cancel()


async def test_a_bad_url_is_refused_at_once() -> None:
    """``node.connect`` and ``seeds`` with a URL that cannot be dialled raise
    ``ConfigurationError``; before, connect hung while its link crash-looped
    until ``/system/remote`` itself failed."""
    with trio.fail_after(10):
        async with trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node:
            for url in ("bogus://127.0.0.1:1", "not a url", "tcp://127.0.0.1:99999"):
                with pytest.raises(trouper.ConfigurationError):
                    await node.connect(url)
            assert node.stats().restarts == 0
            assert node.kernel.cell_at("/system/remote/agent") is not None
        with pytest.raises(trouper.ConfigurationError, match="unknown scheme"):
            async with trouper.open_node("b", seeds=("bogus://x:1",), cookie=COOKIE):
                pass


async def test_gossip_cannot_make_a_link_for_a_connected_node() -> None:
    """A gossip that claims a newer incarnation of a node connected right
    now made a link that waited for that connection to end, for ever."""
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node,
            trouper.open_node(
                "b", listen="tcp://127.0.0.1:0", seeds=node.addresses, cookie=COOKIE
            ) as other,
        ):
            await node.wait_for_members(2, timeout=10)
            async with trio.open_nursery() as nursery:
                client = HostileClient(node.addresses[0], "peer", COOKIE, nursery)
                await client.connect()
                await attached(node, client)
                lie = Member("b", U64_MAX, list(other.addresses), "up", 0)
                marker = Member("z-marker", 1, ["tcp://127.0.0.1:1"], "up", 0)
                await client.send([Gossip([lie, marker])])
                # Dials are handled in order: once the marker's link exists,
                # the lie has been handled too.
                await eventually(lambda: "z-marker" in links(node), "the marker's link")
                assert "b" not in links(node)
                await client.close()
                nursery.cancel_scope.cancel()


async def test_credit_owed_to_a_departed_peer_is_forgotten() -> None:
    """Credit owed for tells (one taken at once, others parked and admitted
    after the peer left) is dropped with the peer, not kept for ever."""
    with trio.fail_after(20):
        async with trouper.open_node(
            "node", listen="tcp://127.0.0.1:0", cookie=COOKIE, tell_window=16
        ) as node:
            gated = await node.spawn(Subscriber, mailbox_size=1)
            async with trio.open_nursery() as nursery:
                client = HostileClient(node.addresses[0], "peer", COOKIE, nursery)
                await client.connect()
                await attached(node, client)
                name, payload = default_registry.encode_payload(5)
                await client.send([Tell(wire(gated), name, msgspec.Raw(payload))] * 4)
                await eventually(lambda: stats(node, "peer").parked == 2, "two tells parked")
                await client.send([Goodbye("bye", "shutdown")])
                await eventually(lambda: stats(node, "peer").status == "down", "the peer left")
                instance = gated._cell.instance  # type: ignore[attr-defined]
                assert isinstance(instance, Subscriber)
                instance.gate.set()
                await eventually(lambda: stats(node, "peer").parked == 0, "the parked tells")
                assert stats(node, "peer").owed_targets == 0
                nursery.cancel_scope.cancel()


async def test_a_consumer_that_leaves_stops_a_quiet_producer() -> None:
    """A remote consumer that leaves a stream whose generator waits for
    something other than credit (a quiet subscription): the generator is
    closed at once. Before, its task waited for the next item, for ever, so
    a peer opening and cancelling streams piled up tasks."""
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node,
            trouper.open_node("b", seeds=node.addresses, cookie=COOKIE) as other,
        ):
            await other.wait_for_members(2, timeout=10)
            ref = await node.spawn(Subscriber, name="subscriber")
            remote = await other.lookup("subscriber", timeout=10)
            assert remote is not None
            async with remote.stream(Quiet()) as items:
                async for item in items:
                    assert item == 1
                    break
            instance = ref._cell.instance  # type: ignore[attr-defined]
            assert isinstance(instance, Subscriber)
            await instance.closed.wait()
            await eventually(lambda: stats(node, "b").streams_in == 0, "the slot freed")


@pytest.mark.parametrize("where", ["local", "remote"])
async def test_a_stream_ends_when_its_actor_stops(where: str) -> None:
    """The consumer of a stream whose actor stops hears ``ActorDead``; before,
    it waited for ever, and a remote one held one of ``max_streams`` slots
    of its node for as long as the link lived."""
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as node,
            trouper.open_node("b", seeds=node.addresses, cookie=COOKIE) as other,
        ):
            await other.wait_for_members(2, timeout=10)
            ref = await node.spawn(Subscriber, name="subscriber")
            consumer = ref if where == "local" else await other.lookup("subscriber", timeout=10)
            assert consumer is not None
            async with consumer.stream(Quiet()) as items:
                assert await items.__anext__() == 1
                await node.stop(ref)
                with pytest.raises(trouper.ActorDead, match="stopped before its stream ended"):
                    await items.__anext__()
            if where == "remote":
                assert stats(node, "b").streams_in == 0
