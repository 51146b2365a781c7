"""The reply slots a worker pool's router gives its workers.

A routed message reaches its worker as ``(msg, original sender, note)``. The
note is the worker's reply slot: the runtime sets it with the handler's
result, or fails it with the handler's error, or with ``ActorDead`` if the
message is rejected (the worker stopped); exactly one of those, once. The
note passes that on to the original reply slot (the asker's, local or
remote; none for a tell) and tells the router the message is finished.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Done", "Gather"]


class Finisher(Protocol):
    def finished(self, worker: Any, token: int) -> None: ...


class Done:
    """The reply slot of one routed message."""

    __slots__ = ("pool", "reply", "token", "trace", "worker")

    def __init__(self, pool: Finisher, worker: Any, token: int, reply: Any) -> None:
        self.pool = pool
        self.worker = worker
        self.token = token
        self.reply = reply
        self.trace = getattr(reply, "trace", None)  # the asker's tracing context

    def set(self, value: Any) -> None:
        if self.reply is not None:
            self.reply.set(value)
        self.pool.finished(self.worker, self.token)

    def fail(self, exc: BaseException) -> None:
        if self.reply is not None:
            self.reply.fail(exc)
        self.pool.finished(self.worker, self.token)


class Gather:
    """An ask to a broadcast pool: every worker's answer as a list, in the
    workers' start order, or the first failure."""

    __slots__ = ("left", "reply", "results")

    def __init__(self, reply: Any, n: int) -> None:
        self.reply = reply
        self.results: list[Any] = [None] * n
        self.left = n

    def part(self, i: int) -> Part:
        return Part(self, i)


class Part:
    __slots__ = ("gather", "i", "trace")

    def __init__(self, gather: Gather, i: int) -> None:
        self.gather = gather
        self.i = i
        self.trace = getattr(gather.reply, "trace", None)

    def set(self, value: Any) -> None:
        g = self.gather
        if g.left > 0:
            g.results[self.i] = value
            g.left -= 1
            if g.left == 0:
                g.reply.set(g.results)

    def fail(self, exc: BaseException) -> None:
        g = self.gather
        if g.left > 0:
            g.left = 0
            g.reply.fail(exc)
