"""Two-way channels between two real nodes (TCP on loopback): the same
conversation as within a node, credit both ways over the wire, every way to
end a channel, and a hostile peer whose bad channel ids end only the
channel it names."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

import trouper
from channel_actors import (
    Abandon,
    Drink,
    Fail,
    Gauge,
    HalfClose,
    Hold,
    Pour,
    Talk,
    Talker,
    shared_side,
    until,
)
from test_remote_bounds import RawPeer, default, eventually, pair, remoting, stats, wire
from trouper.protocols import (
    ChannelCredit,
    ChannelDone,
    ChannelEnd,
    ChannelItem,
    ChannelOpen,
    Envelope,
)


@asynccontextmanager
async def talker(**options: Any) -> AsyncIterator[tuple[trouper.Node, trouper.ActorRef, Gauge]]:
    """Node ``srv`` runs a ``Talker``; yields the other node, its ref there, and the gauge."""
    gauge = Gauge()
    async with pair(**options) as (srv, other):
        await srv.spawn(Talker, gauge, name="talker")
        ref = await other.lookup("talker", timeout=5)
        assert ref is not None and ref.node_id == "srv"
        yield other, ref, gauge


async def test_a_conversation_across_nodes() -> None:
    with trio.fail_after(20):
        async with talker() as (other, ref, gauge):
            async with ref.channel(Talk("hello")) as ch:
                assert await ch.receive() == "hello"
                for line in ("a", "bc", "def"):
                    await ch.send(line)
                    assert await ch.receive() == line.upper()
                await ch.close()
                assert [x async for x in ch] == ["heard 3"]
            await until(gauge, lambda: "talk done" in gauge.outcomes)
            # Many at once over one link, each whole and in order.
            async with trio.open_nursery() as nursery:
                for n in range(8):
                    nursery.start_soon(conversation, ref, n)
            assert gauge.outcomes.count("talk done") == 9
            await eventually(lambda: stats(other, "srv").channels_out == 0)


async def conversation(ref: trouper.ActorRef, n: int) -> None:
    got: list[str] = []

    async def read(ch: trouper.Channel[str, str]) -> None:
        got.extend([x async for x in ch])

    # A small window both ways: the writer and the reader run side by side
    # (the handler echoes each line, so writing alone would fill both windows).
    async with ref.channel(Talk(f"hi {n}"), window=2) as ch, trio.open_nursery() as nursery:
        assert await ch.receive() == f"hi {n}"
        nursery.start_soon(read, ch)
        for i in range(20):
            await ch.send(f"line {n}.{i}")
        await ch.close()
    assert got == [f"LINE {n}.{i}" for i in range(20)] + ["heard 20"]


async def test_credit_stops_the_opener_at_the_handlers_window() -> None:
    """The handler's node grants the opener ``window`` credits (at most
    ``max_channel_window``): a handler that reads nothing stops the opener
    there, and reading lets it go on."""
    assert default("max_channel_window") == 64
    with trio.fail_after(20):
        async with talker(max_channel_window=5) as (_, ref, gauge):
            for window, expected in ((3, 3), (100, 5)):
                sent = 0
                gauge.release = trio.Event()
                gauge.read = 0
                async with ref.channel(Drink(), window=window) as ch, trio.open_nursery() as n:

                    async def writer() -> None:
                        nonlocal sent
                        for i in range(40):
                            await ch.send(i)
                            sent += 1
                        await ch.close()

                    n.start_soon(writer)
                    await eventually(lambda: sent >= expected)  # noqa: B023
                    await trio.testing.wait_all_tasks_blocked(0.05)
                    assert sent == expected
                    gauge.release.set()
                    assert [x async for x in ch] == [40]
                assert sent == 40


async def test_credit_stops_the_handler_at_the_openers_window() -> None:
    with trio.fail_after(20):
        async with talker() as (_, ref, gauge):
            async with ref.channel(Pour(30), window=4) as ch:
                await until(gauge, lambda: gauge.sent == 4)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert gauge.sent == 4
                assert [x async for x in ch] == list(range(30))
            assert gauge.outcomes[-1] == "pour done"


async def test_either_side_closes_cancels_or_fails() -> None:
    with trio.fail_after(20):
        async with talker() as (other, ref, gauge):
            # The handler half-closes, then hears the opener's items to its end.
            async with ref.channel(HalfClose(3)) as ch:
                assert [x async for x in ch] == [0, 1, 2]
                for i in range(4):
                    await ch.send(i)
                await ch.close()
                await until(gauge, lambda: "half done" in gauge.outcomes)
            assert gauge.heard == [0, 1, 2, 3]
            # The handler returns: the opener's iteration ends, its sends fail.
            async with ref.channel(Pour(2)) as ch:
                assert [x async for x in ch] == [0, 1]
                with pytest.raises(trouper.ChannelClosed, match="left the channel"):
                    await ch.send("late")
            # The opener cancels: the handler hears the reason.
            async with ref.channel(Hold()) as ch:
                assert await ch.receive() == "holding"
                ch.cancel("changed my mind")
            await until(gauge, lambda: any("changed my mind" in o for o in gauge.outcomes))
            # The opener fails: the handler hears the error.
            with pytest.raises(KeyError):
                async with ref.channel(Hold()) as ch:
                    assert await ch.receive() == "holding"
                    raise KeyError("lost the key")
            await until(gauge, lambda: any("lost the key" in o for o in gauge.outcomes))
            # The handler cancels with a reason.
            async with ref.channel(Abandon("out of stock")) as ch:
                await ch.send(1)
                with pytest.raises(trouper.ChannelClosed, match="out of stock"):
                    await ch.receive()
            assert gauge.outcomes.count("started") == 1
            # An item of a type the handler does not take: the channel ends, the actor does not.
            async with ref.channel(Talk("typed")) as ch:
                await ch.send(b"bytes")
                with pytest.raises(trouper.ChannelClosed, match="sent a bytes"):
                    async for _ in ch:
                        pass
            assert gauge.outcomes.count("started") == 1
            # The handler fails: the opener hears what, and the actor restarts.
            async with ref.channel(Fail()) as ch:
                await ch.send("gravel")
                with pytest.raises(trouper.ChannelClosed, match="ValueError") as info:
                    await ch.receive()
                assert isinstance(info.value.__cause__, trouper.RemoteError)
                assert "gravel" in str(info.value)
            await until(gauge, lambda: gauge.outcomes.count("started") == 2)
            await eventually(lambda: stats(other, "srv").channels_out == 0)


async def test_an_actor_stopping_or_its_node_leaving_ends_the_channel() -> None:
    gauge = Gauge()
    with trio.fail_after(20):
        async with pair() as (srv, other):
            first = await srv.spawn(Talker, gauge, name="first")
            second = await srv.spawn(Talker, gauge, name="second")
            refs = [await other.lookup(name, timeout=5) for name in ("first", "second")]
            assert None not in refs
            one, two = (r for r in refs if r is not None)
            async with one.channel(Hold()) as ch:
                assert await ch.receive() == "holding"
                await srv.stop(first)
                with pytest.raises(trouper.ChannelClosed, match="stopped") as info:
                    await ch.receive()
                assert isinstance(info.value.__cause__, trouper.ActorDead)
            async with two.channel(Hold()) as ch:
                assert await ch.receive() == "holding"
                await remoting(srv).close()  # srv leaves the cluster
                with pytest.raises(trouper.ChannelClosed, match="NodeDown"):
                    await ch.receive()
            assert second is not None


async def test_leaving_early_ends_only_that_channel_and_frees_its_place() -> None:
    with trio.fail_after(20):
        async with talker() as (other, ref, gauge):
            async with ref.channel(Talk("kept")) as kept:
                assert await kept.receive() == "kept"
                async with ref.channel(Pour(1000), window=2) as left:
                    assert await left.receive() == 0
                await until(gauge, lambda: any(o.startswith("pour closed") for o in gauge.outcomes))
                await kept.send("still")
                assert await kept.receive() == "STILL"
                await kept.close()
                assert [x async for x in kept] == ["heard 1"]
            assert gauge.sent < 1000
            await eventually(lambda: stats(other, "srv").channels_out == 0)


# ------------------------------------------------------------ hostile peer


def is_done(id: int) -> Callable[[Envelope], bool]:
    return lambda env: isinstance(env, ChannelDone) and env.id == id


def item_of(id: int) -> Callable[[Envelope], bool]:
    return lambda env: isinstance(env, ChannelItem) and env.id == id


def encoded(node: trouper.Node, msg: Any) -> tuple[str, msgspec.Raw]:
    name, data = remoting(node).codec.encode_payload(msg)
    return name, msgspec.Raw(data)


async def test_a_hostile_peers_channel_ids_end_only_that_channel() -> None:
    """A reused id ends the channel open under it (both ends hear why);
    frames for ids that are not open are dropped; an item beyond credit or
    one that does not decode ends its channel; the link, the peer's other
    channels and other peers carry on."""
    gauge = Gauge()
    with trio.fail_after(30):
        async with pair(max_channels=3) as (srv, other):
            target = wire(await srv.spawn(Talker, gauge, name="talker"))
            raw = await RawPeer.connect(srv)
            hold = encoded(srv, Hold())
            line = encoded(srv, "hi")

            def open_(id: int, credit: int = 8) -> ChannelOpen:
                return ChannelOpen(id, target, *hold, credit)

            await raw.send(open_(1), open_(2))
            await raw.until(lambda env: isinstance(env, ChannelItem), count=2)  # "holding"
            assert stats(srv, "raw").channels_in == 2
            # 1. Reused: channel 1 ends on both sides; channel 2 does not.
            await raw.send(open_(1))
            (done,) = await raw.until(is_done(1))
            assert isinstance(done, ChannelDone) and done.error is not None
            assert "already open" in done.error.message
            await until(gauge, lambda: any("already open" in o for o in gauge.outcomes))
            await eventually(lambda: stats(srv, "raw").channels_in == 1)
            # 2. Unknown ids: dropped, nothing else happens.
            await raw.send(
                ChannelItem(77, True, *line),
                ChannelCredit(78, True, 5),
                ChannelEnd(79, True),
                ChannelDone(80, True, None),
                ChannelItem(2, False, *line),  # a channel srv opened? it opened none
            )
            await raw.send(ChannelItem(2, True, *line))
            await until(gauge, lambda: gauge.heard == ["hi"])
            # 3. Over the limit: refused with MailboxFull. (Channels 3 and 4
            # go to a handler that reads nothing, so no credit comes back.)
            drink = encoded(srv, Drink())
            await raw.send(*(ChannelOpen(i, target, *drink, 8) for i in (3, 4)), open_(5))
            answers = await raw.until(
                lambda e: is_done(5)(e) or (isinstance(e, ChannelCredit) and e.id in (3, 4)),
                count=3,
            )
            (over,) = [e for e in answers if isinstance(e, ChannelDone)]
            # Channel 3 was granted min(8, max_channel_window) = 8 credits.
            assert ChannelCredit(3, False, 8) in answers
            assert isinstance(over, ChannelDone) and over.error is not None
            assert over.error.error_code == "mailbox-full" and "3 channels" in over.error.message
            # 4. Beyond its 8 credits.
            granted = [ChannelItem(3, True, *line) for _ in range(9)]
            await raw.send(*granted)
            (overrun,) = await raw.until(is_done(3))
            assert isinstance(overrun, ChannelDone) and overrun.error is not None
            assert "credit" in overrun.error.message
            # 5. An item that does not decode.
            await raw.send(ChannelItem(4, True, "no.such:Type", msgspec.Raw(b"\xc0")))
            (bad,) = await raw.until(is_done(4))
            assert isinstance(bad, ChannelDone) and bad.error is not None
            assert "no.such:Type" in bad.error.message
            # Channel 2 still works, and a legitimate peer's channels too.
            await raw.send(ChannelItem(2, True, *line))
            await until(gauge, lambda: gauge.heard == ["hi", "hi"])
            ref = await other.lookup("talker", timeout=5)
            assert ref is not None
            async with ref.channel(Talk("legit")) as ch:
                assert await ch.receive() == "legit"
            await raw.send(ChannelDone(2, True, None))
            await eventually(lambda: stats(srv, "raw").channels_in == 0)
            assert gauge.outcomes.count("started") == 1
            assert stats(srv, "raw").status == "up"


async def test_several_tasks_may_share_one_side_across_nodes() -> None:
    with trio.fail_after(20):
        async with talker() as (_, ref, _gauge):
            await shared_side(ref)


async def test_an_item_that_cannot_be_sent_fails_alone() -> None:
    """Too large for a frame, or of a type nobody registered: that ``send``
    raises, naming why, and the channel carries on."""

    class Unregistered:
        pass

    with trio.fail_after(20):
        async with (
            talker(max_frame_size=64 * 1024) as (_, ref, _gauge),
            ref.channel(Talk("big")) as ch,
        ):
            assert await ch.receive() == "big"
            with pytest.raises(trouper.FrameTooLarge, match="channel item"):
                await ch.send("x" * 100_000)
            with pytest.raises(trouper.ConfigurationError, match="not a registered"):
                await ch.send(Unregistered())
            await ch.send("small")
            assert await ch.receive() == "SMALL"
            await ch.close()
            assert [x async for x in ch] == ["heard 1"]
