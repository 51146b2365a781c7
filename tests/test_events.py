"""Events on one node: bounded subscribers, their overflow policies, drop
counts, and actors subscribed with ``ctx.subscribe``.

The cluster-wide half is tests/test_events_cluster.py.
"""

from __future__ import annotations

from collections import deque

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper.runtime._events import EventStream
from trouper.runtime._subscribers import Subscription


async def test_drop_newest_keeps_what_was_queued_and_counts_the_rest() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            async with node.subscribe("t", buffer=3) as events:
                taken = [node.publish("t", i) for i in range(5)]
                assert taken == [1, 1, 1, 0, 0]
                assert [await events.receive() for _ in range(3)] == [0, 1, 2]
                stats = events.statistics()
                assert (stats.delivered, stats.dropped, stats.queued) == (3, 2, 0)
                assert (stats.policy, stats.buffer, stats.disconnected) == ("drop-newest", 3, False)
            with pytest.raises(trio.ClosedResourceError, match="ended with its async with"):
                await events.receive()
            node_stats = node.event_statistics()
            assert (node_stats.published, node_stats.delivered, node_stats.dropped) == (5, 3, 2)
            assert (node_stats.topics, node_stats.subscribers) == (0, 0)


async def test_drop_oldest_keeps_the_latest() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            async with node.subscribe("t", buffer=2, policy="drop-oldest") as events:
                assert [node.publish("t", i) for i in range(5)] == [1] * 5
                assert [await events.receive() for _ in range(2)] == [3, 4]
                assert events.statistics().dropped == 3
                with pytest.raises(trio.WouldBlock):
                    events.receive_nowait()
            assert node.event_statistics().dropped == 3


async def test_disconnect_hands_out_what_was_queued_then_fails_naming_the_overflow() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            async with (
                node.subscribe("t", buffer=2, policy="disconnect") as slow,
                node.subscribe("t") as fine,
            ):
                assert [node.publish("t", i) for i in range(4)] == [2, 2, 1, 1]
                assert node.subscribers("t") == 1  # the slow one is gone
                got = []
                with pytest.raises(trouper.SubscriberOverflow, match="fell 2 events behind"):
                    async for event in slow:
                        got.append(event)
                assert got == [0, 1]
                assert slow.statistics().disconnected
                assert [await fine.receive() for _ in range(4)] == [0, 1, 2, 3]
            stats = node.event_statistics()
            assert (stats.disconnected, stats.dropped) == (1, 1)
            assert trouper.SubscriberOverflow.error_code == "subscriber-overflow"


async def test_a_waiting_subscriber_wakes_and_a_publisher_never_waits() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node, node.subscribe("t", buffer=1) as events:
            got: list[int] = []

            async def consume() -> None:
                async for event in events:
                    got.append(event)
                    if event == 9:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await trio.testing.wait_all_tasks_blocked()
                for i in range(10):
                    node.publish("t", i)
                    await trio.testing.wait_all_tasks_blocked()
            assert got == list(range(10))


async def test_bad_subscriptions_are_refused_clearly() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            with pytest.raises(trouper.ConfigurationError, match="did you mean 'drop-oldest'"):
                async with node.subscribe("t", policy="drop_oldest"):  # type: ignore[arg-type]
                    pass  # pragma: no cover
            with pytest.raises(trouper.ConfigurationError, match="buffer"):
                async with node.subscribe("t", buffer=0):
                    pass  # pragma: no cover
            with pytest.raises(trouper.ConfigurationError, match="at most 255 characters"):
                node.publish("x" * 256, 1)
            with pytest.raises(trouper.ConfigurationError, match="hashable"):
                async with node.subscribe(["not", "hashable"]):  # type: ignore[arg-type]
                    pass  # pragma: no cover
            assert node.event_statistics().subscribers == 0


# ----------------------------------------------------------------- actors


class Listener(trouper.Actor):
    """Subscribes on start; holds each event until ``opened`` is set."""

    def __init__(
        self,
        topic: str,
        buffer: int = 1000,
        policy: str = "drop-newest",
        opened: trio.Event | None = None,
    ) -> None:
        self.topic = topic
        self.buffer = buffer
        self.policy = policy
        self.opened = opened
        self.entered = trio.Event()
        self.seen: list[object] = []
        self.ended = trio.Event()

    async def on_start(self) -> None:
        self.ctx.subscribe(self.topic, buffer=self.buffer, policy=self.policy)
        self.ctx.subscribe(self.topic, buffer=self.buffer, policy=self.policy)  # no-op

    @trouper.handler
    async def event(self, msg: int) -> None:
        self.seen.append(msg)
        self.entered.set()
        if self.opened is not None:
            await self.opened.wait()

    @trouper.handler
    async def ended_(self, msg: trouper.SubscriptionEnded) -> None:
        self.seen.append(msg)
        self.ended.set()

    @trouper.handler
    async def command(self, msg: str) -> list[object]:
        if msg == "unsubscribe":
            self.ctx.unsubscribe(self.topic)
        elif msg == "crash":
            raise ValueError("crash")
        return self.seen


def listener(ref: trouper.ActorRef) -> Listener:
    from trouper.runtime import cell_of

    cell = cell_of(ref)
    assert cell is not None and isinstance(cell.instance, Listener)
    return cell.instance


async def test_actors_receive_events_as_messages_until_they_unsubscribe_or_stop() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Listener, "t")
            assert node.subscribers("t") == 1  # subscribing twice changed nothing
            assert node.publish("t", 1) == 1
            assert await ref.ask("seen") == [1]
            await ref.ask("unsubscribe")
            assert node.publish("t", 2) == 0
            assert await ref.ask("seen") == [1]
            other = await node.spawn(Listener, "t")
            assert node.publish("t", 3) == 1
            assert await other.ask("seen") == [3]
            await node.stop(other)
            assert node.subscribers("t") == 0
            assert node.event_statistics().topics == 0


async def test_a_restart_keeps_the_subscription_and_a_kill_ends_it() -> None:
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            ref = await node.spawn(Listener, "t")
            with pytest.raises(ValueError, match="crash"):
                await ref.ask("crash")
            assert await ref.ask("seen") == []  # a new instance...
            assert node.subscribers("t") == 1  # ...still subscribed, once
            node.publish("t", 7)
            assert await ref.ask("seen") == [7]
            await node.kill(ref)
            assert node.subscribers("t") == 0


@pytest.mark.parametrize(
    ("policy", "seen", "dropped"),
    [
        ("drop-newest", [0, 1, 2, 3, 4, 5], 5),
        ("drop-oldest", [0, 1, 2, 3, 9, 10], 5),
        ("disconnect", [0, 1, 2, 3, 4, 5, "ended"], 1),
    ],
)
async def test_a_slow_actor_is_held_to_its_buffer_by_its_policy(
    policy: str, seen: list[object], dropped: int
) -> None:
    """Mailbox of 2, buffer of 3 (one parked behind the mailbox, two
    pending): the actor holds event 0 while 1..10 are published."""
    with trio.fail_after(5):
        async with trouper.open_node() as node:
            opened = trio.Event()
            ref = await node.spawn(Listener, "t", 3, policy, opened, mailbox_size=2)
            actor = listener(ref)
            node.publish("t", 0)
            await actor.entered.wait()
            for i in range(1, 11):
                node.publish("t", i)
            stats = node.event_statistics()
            assert stats.dropped == dropped
            if policy == "disconnect":
                assert (stats.disconnected, node.subscribers("t")) == (1, 0)
            opened.set()
            # (events still pending enter the mailbox behind the asks)
            while len(got := await ref.ask("seen")) < len(seen):
                pass
            if policy == "disconnect":
                assert isinstance(got[-1], trouper.SubscriptionEnded)
                assert "fell 3 events behind" in got[-1].reason
                got[-1] = "ended"
            assert got == seen


# ------------------------------------------------------ the queue, as a model


@settings(max_examples=200, deadline=None)
@given(
    policy=st.sampled_from(["drop-newest", "drop-oldest", "disconnect"]),
    buffer=st.integers(1, 5),
    steps=st.lists(st.one_of(st.integers(0, 99), st.none()), max_size=60),
)
def test_a_subscription_queue_follows_its_policy(
    policy: str, buffer: int, steps: list[int | None]
) -> None:
    """Offers (ints) and takes (None) against a plain model of the policy."""
    stream = EventStream()
    sub = Subscription(stream, "t", buffer, policy)
    stream.add(sub)
    model: deque[int] = deque()
    dropped = 0
    over = False
    for step in steps:
        if step is None:
            if model:
                assert sub.receive_nowait() == model.popleft()
            elif over:
                with pytest.raises(trouper.SubscriberOverflow):
                    sub.receive_nowait()
            else:
                with pytest.raises(trio.WouldBlock):
                    sub.receive_nowait()
            continue
        took = stream.publish("t", step)
        if over:
            assert took == 0
        elif len(model) < buffer:
            model.append(step)
            assert took == 1
        elif policy == "drop-newest":
            dropped += 1
            assert took == 0
        elif policy == "drop-oldest":
            model.popleft()
            model.append(step)
            dropped += 1
            assert took == 1
        else:
            over = True
            dropped += 1
            assert took == 0
        stats = sub.statistics()
        assert (stats.queued, stats.dropped, stats.disconnected) == (len(model), dropped, over)
        assert stream.count("t") == (0 if over else 1)
