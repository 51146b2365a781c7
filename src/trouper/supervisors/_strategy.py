"""Supervision strategies, restart intensity, backoff and child specs.

Everything here is pure: time is passed in as ``now`` and randomness as a
``random.Random``, so the sliding intensity window and the backoff schedule
are unit-testable without a clock.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import attrs

from .._errors import ConfigurationError
from .._options import closest

if TYPE_CHECKING:
    from ..actors._actor import Actor

RestartType = Literal["permanent", "transient", "temporary"]
Directive = Literal["restart", "stop", "escalate"]
RESTART_TYPES: tuple[RestartType, ...] = ("permanent", "transient", "temporary")
#: OTP's ``brutal_kill``: kill the child at once, without asking it to stop
BRUTAL_KILL: Literal["brutal_kill"] = "brutal_kill"
#: seconds a stop may take before the child is killed, or ``"brutal_kill"``
Shutdown: TypeAlias = float | Literal["brutal_kill"]

T = TypeVar("T")


# ------------------------------------------------------------- validation
#
# Every check names the field and the value it refused. A nan slips through
# ``x < 0`` (every comparison with nan is false) and an inf through ``x > 0``,
# so the checks ask for what is valid instead of refusing what is not. A bool
# is an int to Python but never a count or a duration to a reader: refused.


def _real(value: object) -> float | None:
    """``value`` if it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:  # an int past 1e308 is finite to Python but not to a deadline
        finite = math.isfinite(value)
    except OverflowError:
        return None
    return value if finite else None


def _finite(field: str, value: object, *, above: float = 0.0, inclusive: bool = True) -> float:
    """``value`` if it is a finite real number >= ``above`` (> if not inclusive)."""
    number = _real(value)
    if number is not None and (number >= above if inclusive else number > above):
        return number
    bound = f"{'>=' if inclusive else '>'} {above:g}"
    raise ConfigurationError(f"{field} must be a finite number {bound}, not {value!r}")


def _count(field: str, value: object, *, minimum: int) -> int:
    """``value`` if it is an int (not a bool, not a float) >= ``minimum``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise ConfigurationError(f"{field} must be an int >= {minimum}, not {value!r}")


def _guess(value: object, valid: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` when ``value`` looks like a typo of one of ``valid``."""
    match = closest(value, valid) if isinstance(value, str) else None
    return "" if match is None else f" (did you mean {match!r}?)"


def check_restart(value: object) -> RestartType:
    """``value`` if it is a restart type; else ``ConfigurationError`` naming the
    closest one (``"prmanent"``: did you mean 'permanent'?).

    ``child()`` and ``spawn(restart=)`` both call this, so a typo is refused
    the same way wherever it is written instead of acting as some default.
    """
    for restart in RESTART_TYPES:
        if isinstance(value, str) and value == restart:
            return restart
    valid = ", ".join(repr(r) for r in RESTART_TYPES)
    raise ConfigurationError(
        f"restart must be one of {valid}, not {value!r}{_guess(value, RESTART_TYPES)}"
    )


def check_shutdown(value: object) -> Shutdown:
    """``value`` if it is a finite number of seconds >= 0 or ``"brutal_kill"``.

    A negative, nan or infinite timeout cannot be waited for (and used to
    crash the node when it stopped); OTP's ``infinity`` is not offered: a
    stop that may never end would hang the node's shutdown.
    """
    if isinstance(value, str) and value == BRUTAL_KILL:
        return BRUTAL_KILL
    seconds = _real(value)
    if seconds is not None and seconds >= 0:
        return seconds
    what = f"a finite number of seconds >= 0 or {BRUTAL_KILL!r}"
    raise ConfigurationError(
        f"shutdown must be {what}, not {value!r}{_guess(value, (BRUTAL_KILL,))}"
    )


def check_mailbox_size(value: object) -> int | None:
    """``value`` if it is None (the node's default) or an int >= 1."""
    if value is None:
        return None
    return _count("mailbox_size", value, minimum=1)


@attrs.frozen
class Backoff:
    """Exponential restart delay: ``initial * multiplier**attempt``, capped at
    ``maximum``, then spread by ``±jitter`` (a fraction of the delay).

    ``0 <= initial <= maximum``, both finite; ``0 <= jitter <= 1``; a finite
    ``multiplier >= 1`` (1 is a constant delay). Anything else is a
    ``ConfigurationError`` naming the field and the value.
    """

    initial: float = 0.01
    maximum: float = 1.0
    jitter: float = 0.1
    multiplier: float = 2.0

    def __attrs_post_init__(self) -> None:
        # ``maximum < initial`` is refused rather than read as "always
        # maximum": a cap below the start is a swapped pair, not a plan.
        # ``multiplier < 1`` would shrink the delay as failures repeat.
        initial = _finite("Backoff.initial", self.initial)
        maximum = _finite("Backoff.maximum", self.maximum)
        if maximum < initial:
            raise ConfigurationError(
                f"Backoff.maximum must be >= Backoff.initial ({initial!r}), not {maximum!r}"
            )
        jitter = _real(self.jitter)
        if jitter is None or not 0 <= jitter <= 1:
            raise ConfigurationError(
                f"Backoff.jitter must be a finite number between 0 and 1, not {self.jitter!r}"
            )
        _finite("Backoff.multiplier", self.multiplier, above=1.0)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before restart number ``attempt`` (0-based) in a window."""
        try:
            base = min(self.maximum, self.initial * float(self.multiplier) ** max(0, attempt))
        except OverflowError:  # 2.0 ** 1100: long past the cap (unless it starts at 0)
            base = self.maximum if self.initial else 0.0
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
    # An error that says its actor must not go on stops it: a restart would
    # only fail again, or undo what the error reports (``trouper.StaleWriter``:
    # a newer instance owns the actor's persistence id now).
    if getattr(exc, "stops_actor", False) is True:
        return "stop"
    return "restart"


@attrs.frozen
class Strategy:
    """Base of the three OTP strategies. ``decider`` maps a failure to
    ``"restart"`` (the default), ``"stop"`` or ``"escalate"``. The default
    decider stops an actor that failed with an error whose ``stops_actor``
    is True (``trouper.StaleWriter``) and restarts it otherwise."""

    max_restarts: int = 3
    within: float = 5.0
    backoff: Backoff = Backoff()
    decider: Callable[[BaseException], Directive] = _default_decider

    def __attrs_post_init__(self) -> None:
        name = type(self).__name__
        _count(f"{name}.max_restarts", self.max_restarts, minimum=0)
        _finite(f"{name}.within", self.within, inclusive=False)
        if not isinstance(self.backoff, Backoff):
            raise ConfigurationError(f"{name}.backoff must be a Backoff, not {self.backoff!r}")
        if not callable(self.decider):
            raise ConfigurationError(f"{name}.decider must be callable, not {self.decider!r}")

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
    shutdown: Shutdown = 5.0
    mailbox_size: int | None = None

    def __attrs_post_init__(self) -> None:
        from ..actors._actor import Actor  # lazily: supervisors load before actors

        if not (isinstance(self.cls, type) and issubclass(self.cls, Actor)):
            raise ConfigurationError(f"a child spec needs an Actor subclass, not {self.cls!r}")
        check_restart(self.restart)
        check_shutdown(self.shutdown)
        check_mailbox_size(self.mailbox_size)


def child(
    cls: type[Actor],
    *args: Any,
    name: str | None = None,
    restart: RestartType = "permanent",
    shutdown: Shutdown = 5.0,
    mailbox_size: int | None = None,
    **kwargs: Any,
) -> ChildSpec:
    """A child spec, OTP style: ``restart`` is permanent (always restarted),
    transient (restarted only after a crash) or temporary (never restarted);
    ``shutdown`` is how long a stop may take before the child is killed, or
    ``"brutal_kill"`` to kill it at once without asking it to stop."""
    return ChildSpec(cls, args, kwargs, name, restart, shutdown, mailbox_size)
