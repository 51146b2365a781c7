"""A property test of one channel's two sides (no node): whatever the
interleaving of sends, reads and closes, each direction holds at most
``window`` items, a sender waits exactly when the other side's window is
full, and every item arrives once, in order."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper.runtime._channels import ChannelSide, local_pair

OPS = st.lists(
    st.tuples(st.sampled_from(["send", "read", "close"]), st.integers(0, 1), st.integers(1, 6)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(window=st.integers(1, 5), ops=OPS)
def test_credit_both_ways_under_any_interleaving(
    window: int, ops: list[tuple[str, int, int]]
) -> None:
    trio.run(play, window, ops)


async def play(window: int, ops: list[tuple[str, int, int]]) -> None:
    opener, handler = local_pair(window, "handler", "opener")
    sides = (opener, handler)
    sent: list[list[int]] = [[], []]  # what each side's writer has handed over
    queued = [0, 0]  # items each side has been asked to send
    got: list[list[int]] = [[], []]  # what each side read
    closed = [False, False]
    writers: list[trio.Event] = [trio.Event(), trio.Event()]

    async def writer(i: int, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            while len(sent[i]) >= queued[i]:
                if closed[i]:
                    sides[i].close()
                    return
                writers[i] = trio.Event()
                await writers[i].wait()
            await sides[i].send(len(sent[i]))
            sent[i].append(len(sent[i]))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in (0, 1):
                await nursery.start(writer, i)
            for op, i, n in ops:
                if op == "send" and not closed[i]:
                    queued[i] += n
                    writers[i].set()
                elif op == "read":
                    reader = sides[i]
                    for _ in range(min(n, len(reader.buffer))):
                        got[i].append(await reader.receive())
                elif op == "close":
                    closed[i] = True
                    writers[i].set()
                await trio.testing.wait_all_tasks_blocked()
                check(sides, window, sent, got, queued)
            # The end: both close, each side drains what the other sent.
            for i in (0, 1):
                closed[i] = True
                writers[i].set()
            for i in (0, 1):
                got[i].extend(await drain(sides[i]))
        for i in (0, 1):
            assert got[1 - i] == list(range(queued[i])) == sent[i]


async def drain(side: ChannelSide) -> list[int]:
    out = []
    while True:
        try:
            out.append(await side.receive())
        except trio.EndOfChannel:
            return out


def check(
    sides: tuple[ChannelSide, ChannelSide],
    window: int,
    sent: list[list[int]],
    got: list[list[int]],
    queued: list[int],
) -> None:
    for i in (0, 1):
        reader = sides[1 - i]
        assert len(reader.buffer) <= window
        # In order, once: what was read, then what waits, is what was sent.
        assert got[1 - i] + list(reader.buffer) == sent[i]
        # A writer with more to send is held back only by a full window.
        if len(sent[i]) < queued[i]:
            assert len(reader.buffer) == window
