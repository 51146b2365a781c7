"""A hypothesis test plays a hostile, authenticated peer against a node's
channels while a legitimate node holds conversations with the same actor.

The hostile peer opens channels with fresh, reused, zero and huge ids, on
live and dead actors, with messages that fit, do not decode or are not for a
channel handler, and sends items (of the right type, the wrong type, or
that do not decode), credits, ends and dones for live and unknown ids, with
either ``opener`` flag. Whatever it does: the node never fails, no actor
restarts, the link stays up, the peer never holds more than
``max_channels`` channels, every legitimate conversation completes whole,
and once the peer has gone the node holds none of its channels.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import attrs
import msgspec
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trouper
from channel_actors import Drink, Gauge, Hold, Talk, Talker, until
from test_remote_bounds import RawPeer, eventually, pair, payload, remoting, stats, wire
from trouper.protocols import (
    Ask,
    ChannelCredit,
    ChannelDone,
    ChannelEnd,
    ChannelItem,
    ChannelOpen,
    ErrorDetail,
    Reply,
)

EXAMPLES = int(os.environ.get("HOSTILE_CHANNEL_EXAMPLES", "100"))
LIMITS = {"max_channels": 4, "max_channel_window": 8}
U64_MAX = 2**64 - 1
CREDIT_MAX = 2**32 - 1


@attrs.frozen
class Open:
    ids: str  # fresh | reused | zero | max
    what: str  # hold | drink | talk | plain | unknown-type | misfit | dead
    credit: int
    count: int


@attrs.frozen
class Frame:
    kind: str  # item | typed-wrong | bad-item | credit | end | done | done-error
    which: int  # < 0: an id never opened
    opener: bool  # the flag the frame carries (True: as the opener, which it is)
    count: int


STEP = st.one_of(
    st.builds(
        Open,
        st.sampled_from(["fresh", "fresh", "fresh", "reused", "zero", "max"]),
        st.sampled_from(
            ["hold", "hold", "drink", "talk", "plain", "unknown-type", "misfit", "dead"]
        ),
        st.sampled_from([1, 3, 16, CREDIT_MAX]),
        st.integers(1, 3),
    ),
    st.builds(
        Frame,
        st.sampled_from(["item", "item", "typed-wrong", "bad-item", "credit", "end", "done"]),
        st.integers(-1, 5),
        st.booleans(),
        st.integers(1, 12),
    ),
    st.builds(Frame, st.just("done-error"), st.integers(-1, 5), st.just(True), st.just(1)),
)


class Hostile:
    """The raw peer, what it opened, and what the node answered."""

    def __init__(self, raw: RawPeer, node: trouper.Node, talker: trouper.ActorRef) -> None:
        self.raw = raw
        self.node = node
        self.talker = wire(talker)
        self.ids = itertools.count(1)
        self.probes = itertools.count(2**62)
        self.opened: list[int] = []
        self.done: set[int] = set()  # ChannelDone from the node
        self.replies: set[int] = set()
        self.changed = trio.Event()

    async def read(self) -> None:
        while True:
            envelopes = await self.raw.receive()
            assert envelopes is not None, "the node hung up on the hostile peer"
            for env in envelopes:
                if isinstance(env, ChannelDone) and not env.opener:
                    self.done.add(env.id)
                elif isinstance(env, Reply):
                    self.replies.add(env.id)
            self.changed.set()
            self.changed = trio.Event()

    async def sync(self) -> None:
        """An ask after the step: once answered, the node has read the step."""
        id = next(self.probes)
        await self.raw.send(Ask(id, self.talker, "builtins:str", payload("probe")))
        while id not in self.replies:
            await self.changed.wait()

    def live(self) -> list[int]:
        return [i for i in self.opened if i not in self.done]

    def encoded(self, msg: Any) -> tuple[str, msgspec.Raw]:
        name, data = remoting(self.node).codec.encode_payload(msg)
        return name, msgspec.Raw(data)

    async def open(self, s: Open) -> None:
        what: dict[str, tuple[str, msgspec.Raw]] = {
            "hold": self.encoded(Hold()),
            "drink": self.encoded(Drink()),
            "talk": self.encoded(Talk("hi")),
            "plain": ("builtins:str", payload("plain")),
            "unknown-type": ("nowhere:Nothing", payload(1)),
            "misfit": (self.encoded(Hold())[0], payload("not a struct")),
            "dead": self.encoded(Hold()),
        }
        target = self.talker
        if s.what == "dead":
            target = msgspec.structs.replace(target, uid=target.uid + 1000)
        envs = []
        for _ in range(s.count):
            live = self.live()
            if s.ids == "reused" and live:
                id = live[-1]
            elif s.ids == "zero":
                id = 0
            elif s.ids == "max":
                id = U64_MAX
            else:
                id = next(self.ids)
            if id not in self.opened:
                self.opened.append(id)
            self.done.discard(id)
            envs.append(ChannelOpen(id, target, *what[s.what], s.credit))
        await self.raw.send(*envs)

    async def frame(self, s: Frame) -> None:
        live = self.live()
        id = 10**12 if s.which < 0 or not live else live[s.which % len(live)]
        envs: list[Any]
        if s.kind == "item":
            envs = [ChannelItem(id, s.opener, "builtins:str", payload("x"))] * s.count
        elif s.kind == "typed-wrong":
            envs = [ChannelItem(id, s.opener, "builtins:bytes", payload(b"x"))] * s.count
        elif s.kind == "bad-item":
            envs = [ChannelItem(id, s.opener, "nowhere:Nothing", payload(1))]
        elif s.kind == "credit":
            envs = [ChannelCredit(id, s.opener, s.count)]
        elif s.kind == "end":
            envs = [ChannelEnd(id, s.opener)]
        else:
            error = ErrorDetail("Hostile", "made up") if s.kind == "done-error" else None
            envs = [ChannelDone(id, s.opener, error)]
            if s.opener:
                self.done.add(id)
        await self.raw.send(*envs)


async def legit(ref: trouper.ActorRef, rounds: list[int]) -> None:
    """Conversations, one after another, each checked whole."""
    for n in itertools.count():
        async with ref.channel(Talk(f"legit {n}"), window=2) as ch:
            assert await ch.receive() == f"legit {n}"
            for i in range(5):
                await ch.send(f"{n}.{i}")
                assert await ch.receive() == f"{n}.{i}".upper()
            await ch.close()
            assert [x async for x in ch] == ["heard 5"]
        rounds[0] += 1


async def play(program: list[Open | Frame]) -> None:
    gauge = Gauge()
    gauge.release.set()  # Drink reads at once
    with trio.fail_after(60):
        async with pair(**LIMITS) as (srv, other):
            talker = await srv.spawn(Talker, gauge, name="talker")
            ref = await other.lookup("talker", timeout=5)
            assert ref is not None
            raw = await RawPeer.connect(srv)
            hostile = Hostile(raw, srv, talker)
            rounds = [0]
            async with trio.open_nursery() as nursery:
                await nursery.start(raw.heartbeats, 0.2)
                nursery.start_soon(hostile.read)
                nursery.start_soon(legit, ref, rounds)
                for step in program:
                    if isinstance(step, Open):
                        await hostile.open(step)
                    else:
                        await hostile.frame(step)
                    await hostile.sync()
                    seen = stats(srv, "raw")
                    assert seen.channels_in <= LIMITS["max_channels"], seen
                    assert seen.status == "up" and seen.connected, seen
                    assert srv.kernel.failure is None
                    assert srv.stats().restarts == 0
                    # Handlers running for it: at most its channels (and a legit one).
                    assert gauge.active <= LIMITS["max_channels"] + 1, gauge.active
                # The legitimate conversations went on meanwhile.
                before = rounds[0]
                await eventually(lambda: rounds[0] >= before + 2)
                nursery.cancel_scope.cancel()
            # The hostile peer hangs up: the node holds none of its channels.
            await raw.stream.aclose()
            await eventually(lambda: stats(srv, "raw").channels_in == 0)
            # ...and none of their handlers runs on (none is left behind).
            with trio.fail_after(5):
                await until(gauge, lambda: gauge.active == 0)
            assert srv.stats().restarts == 0 and gauge.outcomes.count("started") == 1
            assert stats(other, "srv").channels_out == 0


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(STEP, min_size=1, max_size=15))
def test_a_hostile_peer_ends_only_its_own_channels(program: list[Open | Frame]) -> None:
    trio.run(play, program)
