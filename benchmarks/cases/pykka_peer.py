"""The pykka peer: a ThreadingActor handling the same Pings, told or asked from the main thread.

``tell`` is timed from the first tell until the actor has handled the last message (a
``threading.Event`` it sets); ``ask`` is sequential, ``actor_ref.ask(msg)`` without a proxy.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from benchmarks.cases._messages import Ping
from benchmarks.cases._timing import clock, rate

if TYPE_CHECKING:
    import pykka

DEADLINE = 300.0


def _counter_ref(target: int, done: threading.Event) -> pykka.ActorRef[Any]:
    import pykka

    class Counter(pykka.ThreadingActor):
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> Any:
            self.count += 1
            if self.count == target:
                done.set()
            return message.n

    return Counter.start()


def pykka_tell(n: int) -> float:
    done = threading.Event()
    ref = _counter_ref(n, done)
    try:
        start = clock()
        for i in range(n):
            ref.tell(Ping(i))
        if not done.wait(DEADLINE):
            raise TimeoutError("the pykka actor did not handle every message in time")
        elapsed = clock() - start
    finally:
        ref.stop()
    return rate(n, elapsed)


def pykka_ask(n: int) -> float:
    done = threading.Event()
    ref = _counter_ref(n, done)
    try:
        start = clock()
        for i in range(n):
            reply = ref.ask(Ping(i), timeout=DEADLINE)
            if reply != i:
                raise AssertionError(f"ask({i}) answered {reply!r}")
        elapsed = clock() - start
        if not done.is_set():
            raise AssertionError("the pykka actor did not count every ask")
    finally:
        ref.stop()
    return rate(n, elapsed)
