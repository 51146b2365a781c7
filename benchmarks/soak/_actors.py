"""The actors every soak node hosts, and the one message type they take.

Both record a message in the journal the moment it reaches them and only then
reply, so an answered ask is always on disk at its receiver, even if the receiver is
killed right after. The reply is the receiver's incarnation: the sender journals it,
and the checker knows in which journal the message must be.
"""

from __future__ import annotations

import msgspec
import trio

import trouper

from ._journal import Journal


class Work(msgspec.Struct, frozen=True, array_like=True):
    """One numbered message of one sender loop (``key``); ``seq`` never repeats in it."""

    key: str
    seq: int


class Receiver(trouper.Actor):
    """``recv-<node>``: answers at once. The target of the steady and concurrent asks."""

    def __init__(self, journal: Journal, incarnation: int) -> None:
        self.journal = journal
        self.incarnation = incarnation

    @trouper.handler
    async def work(self, msg: Work) -> int:
        self.journal.arrived("recv", msg.key, msg.seq)
        return self.incarnation


class Slow(trouper.Actor):
    """``slow-<node>``: spends ``delay`` on every message, behind a small mailbox.

    Bursts of remote tells to it fill its mailbox within milliseconds, so whatever the
    runtime does with the tells that do not fit is what the soak test puts under load.
    """

    def __init__(self, journal: Journal, incarnation: int, delay: float) -> None:
        self.journal = journal
        self.incarnation = incarnation
        self.delay = delay

    @trouper.handler
    async def work(self, msg: Work) -> int:
        self.journal.arrived("slow", msg.key, msg.seq)
        await trio.sleep(self.delay)
        return self.incarnation
