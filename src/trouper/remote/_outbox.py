"""``Outbox``: what one peer is owed, waiting for that link's one writer.

Two queues: ``urgent`` for what carries no ordering with messages and must
never wait behind them (heartbeats, credit), and ``normal`` for everything
else, in order. The writer takes from urgent first.

Bytes are counted (an estimate: payload plus a fixed overhead) from the
moment an envelope is queued until its write completes, so a peer that does
not read cannot hide data in a write stuck in the kernel:

* local senders (tell, ask, stream items) wait while the count is over
  ``limit`` (backpressure across the network);
* replies and control never wait (nothing may block the link's reader or an
  actor's reply), but past ``hard_limit``, or with no write completing for
  ``slow_consumer_timeout`` while data waits, the peer is a slow consumer
  and is disconnected, as the web gateway disconnects a slow browser.
"""

from __future__ import annotations

from collections import deque

import trio

from ..protocols import Envelope

#: A fixed estimate of an envelope's size beyond its payload.
OVERHEAD = 64
#: Bytes written that count as progress for a link with data waiting.
PROGRESS = 256 * 1024


def size_of(env: Envelope) -> int:
    payload = getattr(env, "payload", None)
    return OVERHEAD if payload is None else OVERHEAD + len(payload)


class Outbox:
    __slots__ = (
        "_drained",
        "_drained_event",
        "_space",
        "_wakeup",
        "busy_since",
        "bytes",
        "hard_limit",
        "limit",
        "normal",
        "progress",
        "urgent",
        "writing",
    )

    def __init__(self, limit: int, hard_limit: int) -> None:
        self.limit = limit
        self.hard_limit = hard_limit
        self.urgent: deque[Envelope] = deque()
        self.normal: deque[Envelope] = deque()
        self.bytes = 0
        self.writing = 0  # bytes taken by the writer, not yet written
        #: Since when data has waited without real progress (None: idle),
        #: and the bytes written since then.
        self.busy_since: float | None = None
        self.progress = 0
        self._wakeup = trio.Event()
        self._space = trio.Event()
        self._space.set()
        #: Nothing queued nor being written (or the waiters were released).
        #: A flag, not an Event: it flips on nearly every push and write, and
        #: an Event is made only for a ``wait_drained`` (a node leaving).
        self._drained = True
        self._drained_event: trio.Event | None = None

    def __len__(self) -> int:
        return len(self.urgent) + len(self.normal)

    @property
    def full(self) -> bool:
        return self.bytes >= self.limit

    @property
    def overflowing(self) -> bool:
        return self.bytes >= self.hard_limit

    def push(self, env: Envelope, *, urgent: bool = False, wake: bool = True) -> None:
        """Queue ``env``; ``wake=False`` when the caller will try to write it
        at once itself (and ``wake()`` the writer if it cannot)."""
        if not self.urgent and not self.normal:
            if wake:
                self._wakeup.set()
            self._drained = False
        if urgent:
            self.urgent.append(env)
        else:
            self.normal.append(env)
        self.bytes += size_of(env)
        if self.bytes >= self.limit and self._space.is_set():
            self._space = trio.Event()

    def take(self, max_count: int, max_bytes: int) -> list[Envelope]:
        """A batch for the writer: urgent first, then normal, in order."""
        batch: list[Envelope] = []
        size = 0
        for queue in (self.urgent, self.normal):
            while queue and len(batch) < max_count and size < max_bytes:
                env = queue.popleft()
                size += size_of(env)
                batch.append(env)
        self.writing = size
        return batch

    def wrote(self) -> None:
        """The batch taken last was written (or given up)."""
        self.bytes -= self.writing
        self.progress += self.writing
        self.writing = 0
        if self.bytes < self.limit:
            self._space.set()
        if not self.urgent and not self.normal:
            self.busy_since = None
            self.progress = 0
            self._set_drained()
        elif self.progress >= PROGRESS:
            # Real progress (the next tick starts the clock again); a peer
            # that reads a trickle (the kernel taking a few more kilobytes
            # now and then) is still a slow consumer.
            self.busy_since = None
            self.progress = 0

    def stalled_for(self, now: float) -> float:
        """How long data has waited without real progress, as seen by the
        ticks (each tick starts the clock on data it finds waiting), so
        pushes and writes never read the clock."""
        if not self.urgent and not self.normal and not self.writing:
            self.busy_since = None
            return 0.0
        if self.busy_since is None:
            self.busy_since = now
        return now - self.busy_since

    def discard(self, keep: type | None = None) -> list[Envelope]:
        """Empty it (a connection ended), keeping envelopes of type ``keep``
        for the next connection; returns what was dropped."""
        kept = deque(e for e in self.normal if keep is not None and type(e) is keep)
        dropped = [e for e in (*self.urgent, *self.normal) if keep is None or type(e) is not keep]
        self.urgent.clear()
        self.normal = kept
        self.bytes = sum(size_of(e) for e in kept)
        self.writing = 0
        self.busy_since = None
        self.progress = 0
        if self.bytes < self.limit:
            self._space.set()
        if not kept:
            self._set_drained()
        return dropped

    def wake(self) -> None:
        self._wakeup.set()

    async def wait_for_work(self) -> None:
        if not self.urgent and not self.normal:
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    async def wait_for_space(self) -> None:
        """Sleep until the count may be under the limit (callers check again,
        and check that the peer is still there)."""
        if self.bytes >= self.limit:
            await self._space.wait()

    def _set_drained(self) -> None:
        self._drained = True
        event = self._drained_event
        if event is not None:
            self._drained_event = None
            event.set()

    async def wait_drained(self) -> None:
        if self._drained:
            await trio.lowlevel.checkpoint()
            return
        if self._drained_event is None:
            self._drained_event = trio.Event()
        await self._drained_event.wait()

    def release_waiters(self) -> None:
        """Wake every sender waiting for space (the peer went down)."""
        self._space.set()
        self._set_drained()
