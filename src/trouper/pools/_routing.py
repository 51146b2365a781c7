"""How a worker pool's router picks workers: pure classes, no trio, no I/O.

Each routing takes the pool's current workers (in start order) and the
message, and returns the workers that get it: one, or every worker for
``"broadcast"``. ``"least-loaded"`` also takes each worker's load (the
router counts it: messages handed over and not finished, or the worker's
mailbox depth if larger). ``trouper.ConsistentHash(key=...)`` is the
services' spec, with the key read from the message: ``key`` is a function
of the message, or the name of one of its fields. The ring itself is the
services' ``HashRing`` (virtual nodes, stable hashes), so a worker joining
or leaving moves about 1/n of the keys.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .._errors import ConfigurationError
from .._options import closest
from ..services._balance import ConsistentHash, HashRing

__all__ = [
    "ROUTINGS",
    "Broadcast",
    "HashRouting",
    "LeastLoaded",
    "RandomRouting",
    "RoundRobin",
    "Routing",
    "make_routing",
]

ROUTINGS: tuple[str, ...] = ("round-robin", "random", "least-loaded", "broadcast")


class Routing(Protocol):
    #: True if every worker gets each message (then ``pick`` is not used).
    broadcast: bool
    #: True if any worker will do: the router then offers each message only
    #: to workers under their ``prefetch`` and keeps the rest in its queue,
    #: so a worker added by a growth takes a share of what is waiting.
    #: False (a hash ring): the message must reach the worker picked.
    balancing: bool

    def pick(self, workers: Sequence[Any], msg: object, load: Callable[[Any], int]) -> Any:
        """One of ``workers`` (never empty) for ``msg``."""
        ...


class RoundRobin:
    """Each worker in turn; workers joining or leaving shift the turn."""

    __slots__ = ("_next",)
    broadcast = False
    balancing = True

    def __init__(self) -> None:
        self._next = 0

    def pick(self, workers: Sequence[Any], msg: object, load: Callable[[Any], int]) -> Any:
        worker = workers[self._next % len(workers)]
        self._next = (self._next + 1) % (1 << 62)
        return worker


class RandomRouting:
    """A worker drawn from ``rng`` (the node's seeded one unless given)."""

    __slots__ = ("rng",)
    broadcast = False
    balancing = True

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, workers: Sequence[Any], msg: object, load: Callable[[Any], int]) -> Any:
        return workers[self.rng.randrange(len(workers))]


class LeastLoaded:
    """The worker with the smallest load; ties go round-robin, so an idle
    pool is still spread evenly (and the first idle worker found wins)."""

    __slots__ = ("_next",)
    broadcast = False
    balancing = True

    def __init__(self) -> None:
        self._next = 0

    def pick(self, workers: Sequence[Any], msg: object, load: Callable[[Any], int]) -> Any:
        n = len(workers)
        start = self._next % n
        self._next = (self._next + 1) % (1 << 62)
        best = workers[start]
        best_load = load(best)
        for i in range(1, n):
            if best_load == 0:
                break
            worker = workers[(start + i) % n]
            current = load(worker)
            if current < best_load:
                best, best_load = worker, current
        return best


class HashRouting:
    """Messages with the same key go to the same worker while it is in the
    pool. A message whose key cannot be read fails alone, with an error
    naming the key (the router answers an ask with it)."""

    __slots__ = ("_ring", "spec")
    broadcast = False
    balancing = False

    def __init__(self, spec: ConsistentHash) -> None:
        self.spec = spec
        self._ring = HashRing(spec)

    def key_of(self, msg: object) -> object:
        key = self.spec.key
        if callable(key):
            return key(msg)  # type: ignore[arg-type]
        try:
            return getattr(msg, key)
        except AttributeError:
            fields = sorted(getattr(msg, "__struct_fields__", ()) or vars(type(msg)))
            match = closest(key, [f for f in fields if not f.startswith("_")])
            hint = f" (did you mean {match!r}?)" if match else ""
            raise ConfigurationError(
                f"ConsistentHash(key={key!r}): a {type(msg).__name__} has no field {key!r}{hint}"
            ) from None

    def pick(self, workers: Sequence[Any], msg: object, load: Callable[[Any], int]) -> Any:
        return self._ring.pick(workers, key=self.key_of(msg))


class Broadcast:
    """Every worker gets every message (``pick`` is the first, for asks
    that are not gathered)."""

    __slots__ = ()
    broadcast = True
    balancing = False

    def pick(self, workers: Sequence[Any], msg: object, load: Callable[[Any], int]) -> Any:
        return workers[0]


def make_routing(spec: object, rng: random.Random) -> Routing:
    """A fresh routing for ``routing=spec``; ``ConfigurationError`` naming
    the closest valid spec for anything else."""
    if isinstance(spec, ConsistentHash):
        return HashRouting(spec)
    if spec == "round-robin":
        return RoundRobin()
    if spec == "random":
        return RandomRouting(rng)
    if spec == "least-loaded":
        return LeastLoaded()
    if spec == "broadcast":
        return Broadcast()
    valid = ", ".join(repr(s) for s in ROUTINGS)
    match = closest(spec, ROUTINGS) if isinstance(spec, str) else None
    hint = f" (did you mean {match!r}?)" if match else ""
    raise ConfigurationError(
        f"routing must be one of {valid} or trouper.ConsistentHash(key=...), not {spec!r}{hint}"
    )
