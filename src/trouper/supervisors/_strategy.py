"""Supervision strategies, restart intensity, backoff and child specs.

Everything here is pure: time is passed in as ``now`` and randomness as a
``random.Random``, so the sliding intensity window and the backoff schedule
are unit-testable without a clock.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from ..actors._actor import Actor

RestartType = Literal["permanent", "transient", "temporary"]
Directive = Literal["restart", "stop", "escalate"]
RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")

T = TypeVar("T")


@attrs.frozen
class Backoff:
    """Exponential restart delay: ``initial * multiplier**attempt``, capped at
    ``maximum``, then spread by ``±jitter`` (a fraction of the delay)."""

    initial: float = 0.01
    maximum: float = 1.0
    jitter: float = 0.1
    multiplier: float = 2.0

    def __attrs_post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0 or not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"invalid backoff {self!r}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before restart number ``attempt`` (0-based) in a window."""
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt))
        if self.jitter:
            base *= 1.0 + rng.uniform(-self.jitter, self.jitter)
        return max(0.0, min(base, self.maximum))


NO_BACKOFF = Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class RestartIntensity:
    """OTP's restart intensity: at most ``max_restarts`` restarts within any
    ``within``-second window. The window slides: old restarts age out."""

    __slots__ = ("max_restarts", "times", "within")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        self.times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; False means the intensity is exceeded."""
        times = self.times
        while times and times[0] <= now - self.within:
            times.popleft()
        times.append(now)
        return len(times) <= self.max_restarts

    @property
    def recent(self) -> int:
        """Restarts in the current window (after the last ``record``)."""
        return len(self.times)


def _default_decider(exc: BaseException) -> Directive:
    return "restart"


@attrs.frozen
class Strategy:
    """Base of the three OTP strategies. ``decider`` maps a failure to
    ``"restart"`` (the default), ``"stop"`` or ``"escalate"``."""

    max_restarts: int = 3
    within: float = 5.0
    backoff: Backoff = Backoff()
    decider: Callable[[BaseException], Directive] = _default_decider

    def __attrs_post_init__(self) -> None:
        if self.max_restarts < 0 or self.within <= 0:
            raise ConfigurationError(f"invalid restart intensity in {self!r}")

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        """The children to restart, in start order, when ``failed`` failed."""
        raise NotImplementedError

    def intensity(self) -> RestartIntensity:
        return RestartIntensity(self.max_restarts, self.within)


@attrs.frozen
class OneForOne(Strategy):
    """Restart only the child that failed."""

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        return [failed]


@attrs.frozen
class OneForAll(Strategy):
    """Stop every child (in reverse start order) and restart them all."""

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        return list(children)


@attrs.frozen
class RestForOne(Strategy):
    """Restart the failed child and every child started after it."""

    def affected(self, children: Sequence[T], failed: T) -> list[T]:
        index = list(children).index(failed)
        return list(children)[index:]


@attrs.frozen
class ChildSpec:
    """How to start (and restart) one child: built by ``trouper.child``."""

    cls: type[Actor]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    name: str | None = None
    restart: RestartType = "permanent"
    shutdown: float = 5.0
    mailbox_size: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.restart not in RESTART_TYPES:
            raise ConfigurationError(
                f"restart must be one of {RESTART_TYPES}, not {self.restart!r}"
            )
        if self.shutdown < 0:
            raise ConfigurationError("shutdown must be >= 0 seconds")


def child(
    cls: type[Actor],
    *args: Any,
    name: str | None = None,
    restart: RestartType = "permanent",
    shutdown: float = 5.0,
    mailbox_size: int | None = None,
    **kwargs: Any,
) -> ChildSpec:
    """A child spec, OTP style: ``restart`` is permanent (always restarted),
    transient (restarted only after a crash) or temporary (never restarted);
    ``shutdown`` is how long a stop may take before the child is killed."""
    return ChildSpec(cls, args, kwargs, name, restart, shutdown, mailbox_size)
