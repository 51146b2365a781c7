"""Circuit breaker: its transition table, and a state machine against a model."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from trouper import ConfigurationError
from trouper.services import Breaker, BreakerChanged, CircuitBreaker
from trouper.services._breaker import TRANSITIONS


def test_closed_opens_after_n_failures_then_probes_then_closes() -> None:
    changes: list[tuple[str, str]] = []
    cb = CircuitBreaker(Breaker(failures=3, reset_after=2.0), lambda o, n: changes.append((o, n)))
    assert cb.state == "closed" and cb.allow(0.0)
    cb.failure(0.0)
    cb.failure(0.1)
    cb.success(0.2)  # a success resets the count: failures must be in a row
    cb.failure(0.3)
    cb.failure(0.4)
    assert cb.state == "closed"
    cb.failure(0.5)
    assert cb.state == "open"
    assert not cb.allow(1.0)
    assert cb.time_left(1.0) == pytest.approx(1.5)
    assert cb.allow(2.5)  # the probe
    assert cb.state == "half-open"
    assert not cb.allow(2.6)  # one probe at a time
    assert cb.time_left(2.6) == 0.0
    cb.success(2.7)
    assert cb.state == "closed"
    assert changes == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]


def test_a_failed_probe_reopens_for_another_full_wait() -> None:
    cb = CircuitBreaker(Breaker(failures=1, reset_after=1.0))
    cb.failure(0.0)
    assert cb.allow(1.0)
    cb.failure(1.5)
    assert cb.state == "open"
    assert cb.time_left(1.5) == pytest.approx(1.0)
    assert not cb.allow(2.4)
    assert cb.allow(2.5)


def test_a_lost_probe_expires() -> None:
    cb = CircuitBreaker(Breaker(failures=1, reset_after=1.0))
    cb.failure(0.0)
    assert cb.allow(1.0)  # its caller was cancelled and never reports
    assert not cb.allow(1.5)
    assert cb.allow(2.0)


def test_late_answers_while_open_do_not_extend_the_wait() -> None:
    cb = CircuitBreaker(Breaker(failures=1, reset_after=1.0))
    cb.failure(0.0)
    cb.failure(0.5)
    cb.success(0.6)
    assert cb.state == "open"
    assert cb.time_left(0.6) == pytest.approx(0.4)


def test_every_state_and_event_pair_is_in_the_table_or_cannot_happen() -> None:
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == {"closed", "open", "half-open"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failures": 0}, "Breaker.failures"),
        ({"failures": 1.5}, "Breaker.failures"),
        ({"reset_after": 0.0}, "Breaker.reset_after"),
        ({"reset_after": -1.0}, "Breaker.reset_after"),
        ({"reset_after": math.nan}, "Breaker.reset_after"),
        ({"reset_after": math.inf}, "Breaker.reset_after"),
    ],
)
def test_breaker_refuses_bad_values(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Breaker(**kwargs)  # type: ignore[arg-type]


def test_breaker_changed_is_a_msgspec_event() -> None:
    event = BreakerChanged("accounts", "<ActorRef /user/a#1 @n1>", "closed", "open")
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(event), type=BreakerChanged) == event


class Model:
    """The breaker as plainly as it can be written, without a table."""

    def __init__(self, failures: int, reset_after: float) -> None:
        self.n, self.reset = failures, reset_after
        self.state, self.count, self.opened, self.probe = "closed", 0, 0.0, None

    def cool(self, now: float) -> None:
        if self.state == "open" and now - self.opened >= self.reset:
            self.state, self.probe = "half-open", None

    def allow(self, now: float) -> bool:
        self.cool(now)
        if self.state == "closed":
            return True
        if self.state == "half-open" and (self.probe is None or now - self.probe >= self.reset):
            self.probe = now
            return True
        return False

    def success(self, now: float) -> None:
        self.cool(now)
        self.count = 0
        if self.state == "half-open":
            self.state, self.probe = "closed", None

    def failure(self, now: float) -> None:
        self.cool(now)
        if self.state == "closed":
            self.count += 1
            if self.count >= self.n:
                self.state, self.opened = "open", now
        elif self.state == "half-open":
            self.state, self.opened, self.probe = "open", now, None


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.changes: list[tuple[str, str]] = []
        self.cb = CircuitBreaker(Breaker(3, 2.0), lambda o, n: self.changes.append((o, n)))
        self.model = Model(3, 2.0)
        self.last = "closed"

    @rule(dt=st.floats(0, 3))
    def wait(self, dt: float) -> None:
        self.now += dt

    @rule()
    def allow(self) -> None:
        assert self.cb.allow(self.now) == self.model.allow(self.now)

    @rule()
    def success(self) -> None:
        self.cb.success(self.now)
        self.model.success(self.now)

    @rule()
    def failure(self) -> None:
        self.cb.failure(self.now)
        self.model.failure(self.now)

    @invariant()
    def agrees(self) -> None:
        assert self.cb.state == self.model.state
        left = self.cb.time_left(self.now)
        assert left == 0.0 or self.cb.state == "open"
        assert 0.0 <= left <= 2.0

    @invariant()
    def every_change_is_reported(self) -> None:
        for old, new in self.changes:
            assert old != new
            assert old == self.last
            self.last = new
        self.changes.clear()
        assert self.last == self.cb.state


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestBreaker = BreakerMachine.TestCase
