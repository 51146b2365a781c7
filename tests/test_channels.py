"""Two-way channels within one node: the conversation, credit both ways,
every way for either side to end it, and the mistakes a program can make."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from trouper.services import channel_method, channel_parameter


@pytest.fixture
async def node() -> AsyncIterator[trouper.Node]:
    async with trouper.open_node("solo") as node:
        yield node


async def test_a_conversation_both_ways(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Talk("hello")) as ch:
            assert await ch.receive() == "hello"
            for line in ("a", "bc", "def"):
                await ch.send(line)
                assert await ch.receive() == line.upper()
            await ch.close()
            assert [x async for x in ch] == ["heard 3"]
            # After a clean end, receive says so again, as a trio channel does.
            with pytest.raises(trio.EndOfChannel):
                await ch.receive()
        await until(gauge, lambda: "talk done" in gauge.outcomes)


async def test_a_reader_that_does_not_read_stops_the_opener(node: trouper.Node) -> None:
    """Credit from the handler to the opener: the opener's sends stop after
    ``window`` items the handler has not taken, and go on as it reads."""
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    sent = 0
    with trio.fail_after(10):
        async with ref.channel(Drink(), window=4) as ch, trio.open_nursery() as nursery:

            async def writer() -> None:
                nonlocal sent
                for i in range(50):
                    await ch.send(i)
                    sent += 1
                await ch.close()

            nursery.start_soon(writer)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == 4
            gauge.release.set()
            assert [x async for x in ch] == [50]
        assert sent == 50 and gauge.read == 50


async def test_an_opener_that_does_not_read_stops_the_handler(node: trouper.Node) -> None:
    """Credit from the opener to the handler: the handler's sends stop after
    ``window`` items the opener has not taken."""
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Pour(40), window=3) as ch:
            await until(gauge, lambda: gauge.sent == 3)
            await trio.testing.wait_all_tasks_blocked()
            assert gauge.sent == 3 and ch.buffered == 3
            assert [x async for x in ch] == list(range(40))
        assert gauge.outcomes[-1] == "pour done"


async def test_either_side_closes_and_may_still_receive(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(HalfClose(3)) as ch:
            assert [x async for x in ch] == [0, 1, 2]  # the handler closed its side
            for i in range(5):
                await ch.send(i * 10)
            await ch.close()
            with pytest.raises(trouper.ChannelClosed, match="closed"):
                await ch.send(99)
            await until(gauge, lambda: "half done" in gauge.outcomes)
        assert gauge.heard == [0, 10, 20, 30, 40]
        assert "send after close refused" in gauge.outcomes


async def test_the_handler_returning_ends_the_opener_iteration_and_refuses_sends(
    node: trouper.Node,
) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Pour(2)) as ch:
            assert [x async for x in ch] == [0, 1]
            with pytest.raises(trouper.ChannelClosed, match="left the channel"):
                await ch.send("too late")


async def test_the_opener_cancels(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Hold()) as ch:
            assert await ch.receive() == "holding"
            ch.cancel("changed my mind")
            with pytest.raises(trouper.ChannelClosed, match="closed"):
                await ch.send("x")
        await until(gauge, lambda: any(o.startswith("hold closed") for o in gauge.outcomes))
        (outcome,) = [o for o in gauge.outcomes if o.startswith("hold closed")]
        assert "changed my mind" in outcome
        # The end of a conversation, not a failure: the actor did not restart.
        assert gauge.outcomes.count("started") == 1
        assert await ref.ask("still here") == "still here"


async def test_the_opener_fails_and_the_handler_hears_why(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        with pytest.raises(KeyError):
            async with ref.channel(Hold()) as ch:
                assert await ch.receive() == "holding"
                raise KeyError("lost the key")
        await until(gauge, lambda: any(o.startswith("hold closed") for o in gauge.outcomes))
        (outcome,) = [o for o in gauge.outcomes if o.startswith("hold closed")]
        assert "KeyError" in outcome and "lost the key" in outcome
        assert gauge.outcomes.count("started") == 1


async def test_a_cancelled_opener_ends_the_channel(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        with trio.CancelScope() as scope:
            async with ref.channel(Hold()) as ch:
                assert await ch.receive() == "holding"
                scope.cancel()
                await ch.receive()
        await until(gauge, lambda: any(o.startswith("hold closed") for o in gauge.outcomes))
        assert any("cancelled" in o for o in gauge.outcomes if o.startswith("hold closed"))


async def test_the_handler_fails_and_the_opener_hears_why(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Fail()) as ch:
            await ch.send("gravel")
            with pytest.raises(trouper.ChannelClosed, match="ValueError") as info:
                await ch.receive()
            assert "gravel" in str(info.value)
            assert isinstance(info.value.__cause__, ValueError)
            with pytest.raises(trouper.ChannelClosed):
                await ch.send("more")
        # Like any handler that raises, the actor failed and was restarted.
        await until(gauge, lambda: gauge.outcomes.count("started") == 2)


async def test_the_handler_cancels_with_a_reason(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Abandon("out of stock")) as ch:
            await ch.send(1)
            with pytest.raises(trouper.ChannelClosed, match="out of stock"):
                async for _ in ch:
                    pass
        assert "abandoned" in gauge.outcomes and gauge.outcomes.count("started") == 1


async def test_an_actor_that_stops_ends_its_channels_with_an_error(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Hold()) as first, ref.channel(Hold()) as second:
            assert await first.receive() == await second.receive() == "holding"
            await node.stop(ref)
            for ch in (first, second):
                with pytest.raises(trouper.ChannelClosed, match="stopped") as info:
                    await ch.receive()
                assert isinstance(info.value.__cause__, trouper.ActorDead)
        assert gauge.outcomes.count("hold cancelled") == 2


async def test_leaving_early_ends_only_that_channel(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Talk("kept")) as kept:
            assert await kept.receive() == "kept"
            async with ref.channel(Pour(1000), window=2) as left:
                assert await left.receive() == 0
            # The handler stuck on a full window hears the opener left.
            await until(gauge, lambda: any(o.startswith("pour closed") for o in gauge.outcomes))
            await kept.send("still")
            assert await kept.receive() == "STILL"
            await kept.close()
            assert [x async for x in kept] == ["heard 1"]
        assert gauge.outcomes.count("started") == 1
        assert gauge.sent < 1000


async def test_a_handler_stuck_elsewhere_is_cancelled_after_its_opener_left(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gauge = Gauge()
    with trio.fail_after(60):
        async with trouper.open_node("solo") as node:
            ref = await node.spawn(Stuck, gauge)
            async with ref.channel(Hold()) as ch:
                assert await ch.receive() == "stuck"
            # The linger (5 s of virtual time) runs out: the handler is cancelled.
            await until(gauge, lambda: "stuck cancelled" in gauge.outcomes)
            assert await ref.ask("alive") == "alive"


class Stuck(trouper.Actor):
    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge

    @trouper.handler
    async def hold(self, msg: Hold, channel: trouper.Channel[str, Any]) -> None:
        await channel.send("stuck")
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.gauge.note("stuck cancelled")
            raise

    @trouper.handler
    async def plain(self, msg: str) -> str:
        return msg


async def test_wrong_uses_fail_with_a_clear_error(node: trouper.Node) -> None:
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        # A channel opened on a plain handler: the opener hears which.
        async with ref.channel("plain text") as ch:
            with pytest.raises(trouper.ChannelClosed, match="not a channel handler"):
                await ch.receive()
        # A channel handler asked: told to use ref.channel(); told: a dead letter.
        with pytest.raises(trouper.UnhandledMessage, match=r"ref\.channel\(\)"):
            await ref.ask(Talk("hi"))
        async with node.dead_letters.subscribe() as letters:
            await ref.tell(Talk("hi"))
            letter = await letters.receive()
        assert letter.message == Talk("hi") and "ref.channel()" in letter.reason
        # An item of a type the handler does not take ends the channel, not the actor.
        async with ref.channel(Talk("hi")) as ch:
            assert await ch.receive() == "hi"
            await ch.send(42)
            with pytest.raises(
                trouper.ChannelClosed, match="sent a int on a channel that takes str"
            ):
                await ch.receive()
        for window in (0, -1, 1.5, True):
            with pytest.raises(trouper.ConfigurationError, match="window"):
                async with ref.channel(Talk("hi"), window=window):
                    pass
        await node.stop(ref)
        with pytest.raises(trouper.ActorDead):
            async with ref.channel(Talk("hi")):
                pass
        assert gauge.outcomes.count("started") == 1


async def test_a_channel_handler_is_an_async_def(node: trouper.Node) -> None:
    class Bad(trouper.Actor):
        @trouper.handler
        async def h(self, msg: Talk, channel: trouper.Channel[int, int]) -> Any:
            yield 1

    with pytest.raises(trouper.ConfigurationError, match="not an async generator"):
        await node.spawn(Bad)


@trouper.message
class HaggleArgs(msgspec.Struct, frozen=True):
    """What svc-rpc would generate from ``haggle``'s parameters (the channel aside)."""

    item: str
    start: int


class Shop(trouper.Actor):
    """A service method taking a channel, through the services entry point."""

    async def haggle(self, item: str, start: int, channel: trouper.Channel[int, int]) -> None:
        offer = start
        async for bid in channel:
            if bid >= offer:
                await channel.send(bid)
                return
            offer -= 1
            await channel.send(offer)

    async def plain_method(self, item: str) -> None:
        pass

    @trouper.handler
    async def _haggle(self, args: HaggleArgs, channel: trouper.Channel[int, int]) -> None:
        # What svc-rpc would register for ``haggle``: the method, adapted.
        await channel_method(Shop.haggle)(self, args, channel)


async def test_a_service_method_may_take_a_channel(node: trouper.Node) -> None:
    assert channel_parameter(Shop.haggle) == "channel"
    assert channel_parameter(Shop.plain_method) is None
    with pytest.raises(trouper.ConfigurationError, match="channel"):
        channel_method(Shop.plain_method)
    ref = await node.spawn(Shop)
    with trio.fail_after(10):
        async with ref.channel(HaggleArgs("lamp", 10)) as ch:
            offers = []
            for bid in (5, 6, 7, 8):
                await ch.send(bid)
                offers.append(await ch.receive())
            assert offers == [9, 8, 7, 8]
            assert [x async for x in ch] == []


async def test_several_tasks_may_share_one_side(node: trouper.Node) -> None:
    """Two writers and two readers on the opener's side, a window of 1: every
    item arrives once (no task is left waiting on an event nobody sets)."""
    ref = await node.spawn(Talker, Gauge())
    await shared_side(ref)


async def test_a_restart_ends_the_channels_of_the_failed_instance(node: trouper.Node) -> None:
    """One channel's handler fails: the actor restarts, and its other
    channels (handled by the failed instance) end with an error too."""
    gauge = Gauge()
    ref = await node.spawn(Talker, gauge)
    with trio.fail_after(10):
        async with ref.channel(Hold()) as held, ref.channel(Fail()) as failing:
            assert await held.receive() == "holding"
            await failing.send("gravel")
            with pytest.raises(trouper.ChannelClosed, match="ValueError"):
                await failing.receive()
            with pytest.raises(trouper.ChannelClosed, match="stopped during the channel"):
                await held.receive()
        await until(gauge, lambda: gauge.outcomes.count("started") == 2)
        # The new instance takes channels as before.
        async with ref.channel(Talk("again")) as ch:
            assert await ch.receive() == "again"


async def test_a_third_parameter_must_be_the_channel(node: trouper.Node) -> None:
    class Confused(trouper.Actor):
        @trouper.handler
        async def h(self, msg: Talk, extra: int) -> None:
            pass

    with pytest.raises(trouper.ConfigurationError, match=r"annotate extra as trouper\.Channel"):
        await node.spawn(Confused)
