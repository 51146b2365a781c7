"""What a worker pool's router knows of its workers' load: pure, time passed in.

The router hands each message to a worker with a completion note (the
worker's reply slot); the note comes back, set or failed, when the handler
finishes or the message is rejected. So per worker the router holds the
messages handed over and not finished, in the order they were handed:

* a worker is **busy** while it has one (utilisation = busy / size);
* the messages behind the first are **waiting** in its mailbox;
* a worker handles its mailbox in order, so when the first finishes the
  next starts: how long that one **waited** is exactly ``now`` minus when
  it was handed over. That is the wait the sizing policy grows on.

Bounds: one entry per message in flight, and a worker's mailbox is bounded,
so this is at most ``size x mailbox_size`` entries.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["PoolLoad"]

W = TypeVar("W", bound=Hashable)


class PoolLoad(Generic[W]):
    """In-flight messages per worker, keyed by an opaque worker handle."""

    __slots__ = ("_next", "_sent", "finished_total", "handed_total", "waits")

    def __init__(self) -> None:
        self._sent: dict[W, dict[int, float]] = {}
        self._next = 0
        self.handed_total = 0
        self.finished_total = 0
        #: How many finished messages had waited behind another one.
        self.waits = 0

    def add(self, worker: W) -> None:
        self._sent.setdefault(worker, {})

    def remove(self, worker: W) -> None:
        """Forget ``worker`` (gone); its notes that still come back are ignored."""
        self._sent.pop(worker, None)

    def __contains__(self, worker: W) -> bool:
        return worker in self._sent

    def __iter__(self) -> Iterator[W]:
        return iter(self._sent)

    def handed(self, worker: W, now: float) -> int:
        """``worker`` got a message at ``now``: the token its note carries."""
        self._next += 1
        self.handed_total += 1
        self._sent[worker][self._next] = now
        return self._next

    def finished(self, worker: W, token: int, now: float) -> float | None:
        """The message ``token`` is done: how long the next one waited before
        its handler started, or None if none was waiting (or out of order)."""
        sent = self._sent.get(worker)
        if sent is None or token not in sent:
            return None
        self.finished_total += 1
        first = next(iter(sent))
        del sent[token]
        if token != first or not sent:
            return None
        self.waits += 1
        return max(0.0, now - next(iter(sent.values())))

    def outstanding(self, worker: W) -> int:
        sent = self._sent.get(worker)
        return 0 if sent is None else len(sent)

    def busy(self) -> int:
        return sum(1 for sent in self._sent.values() if sent)

    def waiting(self) -> int:
        """Messages queued behind the one each worker is handling."""
        return sum(len(sent) - 1 for sent in self._sent.values() if sent)

    def oldest_wait(self, now: float) -> float:
        """How long the longest-waiting queued message has waited so far."""
        oldest = 0.0
        for sent in self._sent.values():
            if len(sent) > 1:
                it = iter(sent.values())
                next(it)
                oldest = max(oldest, now - next(it))
        return oldest

    def idle(self, workers: Sequence[W]) -> list[W]:
        """Of ``workers``, those with nothing in flight, last started first
        (the ones a shrink stops)."""
        return [w for w in reversed(workers) if not self._sent.get(w)]
