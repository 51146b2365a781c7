"""The server node's actor: one ask handler and one bulk stream handler.

Both node processes import this module, so the message types register under the same
names on both sides (handler annotations register them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

import trouper
from benchmarks.cases._messages import Ping


class Bulk(msgspec.Struct, frozen=True):
    """Ask for an endless stream of ``chunk``-byte items; the consumer decides when to stop."""

    chunk: int


class Echo(trouper.Actor):
    """Answers each Ping with itself; streams bytes as fast as the consumer's credit allows."""

    @trouper.handler
    async def ping(self, msg: Ping) -> Ping:
        return msg

    @trouper.handler
    async def bulk(self, msg: Bulk) -> AsyncIterator[bytes]:
        # One buffer yielded over and over: the cost measured is moving it, not making it.
        payload = bytes(msg.chunk)
        while True:
            yield payload
