"""What every soak node does to its peers: steady asks, bursts of tells, ask bursts.

Every send is bounded in time: an ask by its own timeout and, around it, a second
deadline that catches an ask whose timeout failed to fire (journaled as a hang); a
burst of tells by one deadline for the whole burst. A sequence number is never reused,
even after a failure, so a number that arrives twice was duplicated by the runtime.

A key names one sender loop of one process: ``<node>.<start>.<kind>.<peer>.<index>``,
where ``start`` counts the process's restarts and ``kind`` is ``ask`` (a steady loop,
one ask in flight), ``tell`` (bursts of tells, each closed by an ask, in order) or
``conc`` (concurrent asks, so in no particular order).
"""

from __future__ import annotations

import random
from typing import cast

import trio

import trouper

from ._actors import Work
from ._config import Workload
from ._journal import LAG_REPORTED, Journal

#: An ask still pending this long after its own timeout has hung.
HANG_SLACK = 1.0
LAG_PERIOD = 0.1


async def watch_lag(journal: Journal) -> None:
    """Journal each time this process's loop wakes up late behind a timer.

    A node that cannot run cannot send heartbeats: the lag journal tells a starved
    process apart from a runtime that queued its heartbeats behind a mailbox.
    """
    while True:
        before = trio.current_time()
        await trio.sleep(LAG_PERIOD)
        late = trio.current_time() - before - LAG_PERIOD
        if late > LAG_REPORTED:
            journal.lag(late)


class Traffic:
    """The sender loops of one node process towards each of its peers."""

    def __init__(
        self,
        node: trouper.Node,
        journal: Journal,
        settings: Workload,
        *,
        start: int,
        peers: list[str],
        rng: random.Random,
    ) -> None:
        self.node = node
        self.journal = journal
        self.settings = settings
        self.start = start
        self.peers = peers
        self.rng = rng

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_lag, self.journal)
            for peer in self.peers:
                for index in range(self.settings.ask_loops):
                    nursery.start_soon(self.ask_loop, peer, index)
                nursery.start_soon(self.burst_loop, peer)
                nursery.start_soon(self.conc_loop, peer)

    def key(self, kind: str, peer: str, index: int = 0) -> str:
        return f"{self.node.id}.{self.start}.{kind}.{peer}.{index}"

    async def resolve(self, name: str) -> trouper.ActorRef:
        """The actor registered as ``name``, waiting while its node is away."""
        while True:
            try:
                return await self.node.lookup(name, timeout=1.0)
            except trouper.ActorNotFound:
                pass  # that lookup waited a second: the node is restarting, or cut off

    async def ask(self, ref: trouper.ActorRef, key: str, seq: int, timeout: float) -> int | None:
        """The incarnation that answered, or None (journaled) if the ask failed."""
        started = trio.current_time()
        try:
            with trio.fail_after(timeout + HANG_SLACK):
                return cast(int, await ref.ask(Work(key, seq), timeout=timeout))
        except trio.TooSlowError:
            self.journal.overran(key, seq, trio.current_time() - started)
        except trouper.TrouperError as exc:
            self.journal.failed(key, seq, type(exc).__name__)
        return None

    async def ask_loop(self, peer: str, index: int) -> None:
        """One ask at a time to ``recv-<peer>``, for as long as this process lives."""
        key, seq = self.key("ask", peer, index), 0
        ref: trouper.ActorRef | None = None
        while True:
            if ref is None:
                ref = await self.resolve(f"recv-{peer}")
            seq += 1
            incarnation = await self.ask(ref, key, seq, self.settings.ask_timeout)
            if incarnation is None:
                ref = None  # the name may belong to a new incarnation by now
            else:
                self.journal.answered(peer, incarnation, key, seq)
            await trio.sleep(self.settings.ask_interval)

    async def burst_loop(self, peer: str) -> None:
        """Now and then a burst of tells to ``slow-<peer>``, closed by an ask.

        The ask's answer acknowledges the whole burst: messages from one sender to one
        actor arrive in order, so every tell before it must have arrived, once.
        """
        settings, key, seq = self.settings, self.key("tell", peer), 0
        while True:
            await trio.sleep(self.rng.uniform(0.5, 1.5) * settings.burst_every)
            ref = await self.resolve(f"slow-{peer}")
            first, count = seq + 1, self.rng.randint(settings.burst_min, settings.burst_max)
            seq = first + count  # the closing ask's number; failed or not, none is reused
            accepted = await self.tells(ref, key, first, count)
            self.journal.burst(peer, key, first, accepted)
            if accepted < count:
                continue
            incarnation = await self.ask(ref, key, seq, settings.flush_timeout)
            if incarnation is not None:
                self.journal.flushed(peer, incarnation, key, first, seq)

    async def tells(self, ref: trouper.ActorRef, key: str, first: int, count: int) -> int:
        """Tell ``first..first+count-1``; how many ``tell`` accepted before a failure."""
        seq = first
        try:
            with trio.fail_after(self.settings.flush_timeout):
                for seq in range(first, first + count):
                    await ref.tell(Work(key, seq))
        except trio.TooSlowError:
            self.journal.failed(key, seq, "TellBlocked")
            return seq - first
        except trouper.TrouperError as exc:
            self.journal.failed(key, seq, type(exc).__name__)
            return seq - first
        return count

    async def conc_loop(self, peer: str) -> None:
        """Now and then ``conc_size`` asks at once to ``recv-<peer>``."""
        settings, key, seq = self.settings, self.key("conc", peer), 0
        while True:
            await trio.sleep(self.rng.uniform(0.5, 1.5) * settings.conc_every)
            ref = await self.resolve(f"recv-{peer}")
            async with trio.open_nursery() as nursery:
                for _ in range(settings.conc_size):
                    seq += 1
                    nursery.start_soon(self.conc_one, ref, peer, key, seq)

    async def conc_one(self, ref: trouper.ActorRef, peer: str, key: str, seq: int) -> None:
        incarnation = await self.ask(ref, key, seq, self.settings.ask_timeout)
        if incarnation is not None:
            self.journal.answered(peer, incarnation, key, seq)
