"""The one sizing policy (``PoolPolicy``, ``Sizer``): pure, time passed in."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trouper import ConfigurationError, PoolPolicy
from trouper.pools import Sizer


def _band_factor(size: int, hi: int) -> float:
    fraction = size / hi
    return 2.0 if fraction < 0.5 else 1.5 if fraction < 0.75 else 1.2 if fraction < 0.9 else 1.1


def test_growth_factors_fall_by_band_near_max() -> None:
    policy = PoolPolicy(min=1, max=100)
    assert [policy.grown(s) for s in (1, 10, 49)] == [2, 20, 98]  # x2.0 under half
    assert [policy.grown(s) for s in (50, 60, 74)] == [75, 90, 100]  # x1.5 (capped)
    assert [policy.grown(s) for s in (75, 80, 89)] == [90, 96, 100]  # x1.2
    assert [policy.grown(s) for s in (90, 95, 99)] == [99, 100, 100]  # x1.1, capped
    assert policy.grown(100) == 100


@given(st.integers(1, 500), st.data())
def test_one_growth_step_is_the_bands_factor_and_at_least_one(hi: int, data: st.DataObject) -> None:
    lo = data.draw(st.integers(1, hi))
    size = data.draw(st.integers(lo, hi))
    policy = PoolPolicy(min=lo, max=hi)
    grown = policy.grown(size)
    assert lo <= grown <= hi
    if size < hi:
        exact = Fraction(size) * Fraction(str(_band_factor(size, hi)))  # no float error
        expected = min(hi, max(size + 1, math.ceil(exact)))
        assert grown == expected
    else:
        assert grown == hi


@st.composite
def _observations(draw: st.DrawFn) -> tuple[PoolPolicy, list[tuple[float, int, int, int, float]]]:
    hi = draw(st.integers(1, 64))
    lo = draw(st.integers(1, hi))
    policy = PoolPolicy(
        min=lo,
        max=hi,
        shrink_after=draw(st.sampled_from([0.0, 0.5, 3.0])),
        grow_interval=draw(st.sampled_from([0.0, 0.05, 1.0])),
    )
    steps = draw(
        st.lists(
            st.tuples(
                st.floats(0.0, 2.0),  # time since the previous call
                st.integers(0, 100),  # active (clipped to the size)
                st.integers(0, 50),  # waiters
                st.integers(0, 3),  # wait band
                st.floats(0.0, 0.1),  # oldest wait
            ),
            max_size=60,
        )
    )
    return policy, steps


@given(_observations())
def test_the_size_never_leaves_min_and_max(
    case: tuple[PoolPolicy, list[tuple[float, int, int, int, float]]],
) -> None:
    policy, steps = case
    sizer = Sizer(policy)
    now, size = 0.0, policy.min
    for dt, active, waiters, band, oldest in steps:
        now += dt
        sizer.record_wait(band * policy.grow_wait)
        before = (sizer.expansions, sizer.shrinks)
        target = sizer.decide(
            now, size=size, active=min(active, size), waiters=waiters, oldest_wait=oldest
        )
        assert policy.min <= target <= policy.max
        grew, shrank = sizer.expansions - before[0], sizer.shrinks - before[1]
        assert (grew, shrank) == (int(target > size), int(target < size))
        size = target


def test_below_min_goes_straight_to_min() -> None:
    sizer = Sizer(PoolPolicy(min=4, max=8))
    assert sizer.decide(0.0, size=0, active=0) == 4
    assert sizer.decide(0.0, size=2, active=2, waiters=9) == 4
    assert sizer.expansions == 0  # filling up to min is not a growth decision


def test_growth_on_a_long_wait_or_high_utilisation_only() -> None:
    policy = PoolPolicy(min=2, max=64, grow_interval=0.0)
    sizer = Sizer(policy)
    assert sizer.decide(0.0, size=4, active=3) == 4  # 75 %: not above 80 %
    assert sizer.decide(1.0, size=4, active=4) == 8  # 100 %
    assert sizer.decide(2.0, size=8, active=1, oldest_wait=0.005) == 8  # not longer than 5 ms
    assert sizer.decide(3.0, size=8, active=1, oldest_wait=0.0051) == 16
    sizer.record_wait(0.02)  # a served checkout waited: counts at the next decision
    assert sizer.decide(4.0, size=16, active=1) == 32
    assert sizer.decide(5.0, size=32, active=1) == 32  # that wait was consumed
    assert sizer.expansions == 3


def test_growth_is_rate_limited_by_grow_interval() -> None:
    sizer = Sizer(PoolPolicy(min=1, max=64, grow_interval=0.05))
    assert sizer.decide(10.0, size=2, active=2) == 4
    assert sizer.decide(10.01, size=4, active=4) == 4  # too soon after the last growth
    assert sizer.decide(10.049, size=4, active=4) == 4
    assert sizer.decide(10.05, size=4, active=4) == 8
    assert sizer.expansions == 2


def test_no_growth_at_max() -> None:
    sizer = Sizer(PoolPolicy(min=1, max=4, grow_interval=0.0))
    assert sizer.decide(0.0, size=4, active=4, waiters=100, oldest_wait=9.0) == 4
    assert sizer.expansions == 0


def test_shrink_only_after_the_whole_quiet_period() -> None:
    policy = PoolPolicy(min=2, max=64, shrink_after=300.0)
    sizer = Sizer(policy)
    assert sizer.decide(0.0, size=20, active=3) == 20  # 15 %: quiet starts
    assert sizer.next_deadline() == 300.0
    assert sizer.decide(150.0, size=20, active=2) == 20
    assert sizer.decide(299.9, size=20, active=1) == 20
    # The busiest moment of the period had 3 active: the size at which that
    # sits at the growth threshold is ceil(3 / 0.8) = 4.
    assert sizer.decide(300.0, size=20, active=0) == 4
    assert sizer.shrinks == 1
    assert sizer.next_deadline() == 600.0  # a new quiet period started


def test_a_busy_moment_restarts_the_quiet_period() -> None:
    sizer = Sizer(PoolPolicy(min=1, max=64, shrink_after=10.0))
    assert sizer.decide(0.0, size=10, active=0) == 10
    assert sizer.decide(9.0, size=10, active=5) == 10  # 50 %: not quiet
    assert sizer.next_deadline() is None
    assert sizer.decide(10.0, size=10, active=0) == 10  # quiet again, from 10.0
    assert sizer.decide(19.9, size=10, active=0) == 10
    assert sizer.decide(20.0, size=10, active=0) == 1
    assert sizer.decide(21.0, size=10, active=1, waiters=1) == 10  # waiters: never quiet
    assert sizer.next_deadline() is None


def test_shrink_never_goes_below_min() -> None:
    sizer = Sizer(PoolPolicy(min=3, max=10, shrink_after=1.0))
    sizer.decide(0.0, size=10, active=0)
    assert sizer.decide(1.0, size=10, active=0) == 3


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"min": 5, "max": 4}, "min <= max"),
        ({"min": -1}, "min <= max"),
        ({"max": 0, "min": 0}, "max >= 1"),
        ({"min": 1.5}, "min must be an int"),
        ({"max": True}, "max must be an int"),
        ({"grow_above": 1.5}, "grow_above must be between 0 and 1"),
        ({"shrink_below": -0.1}, "shrink_below must be between 0 and 1"),
        ({"shrink_below": 0.9, "grow_above": 0.8}, "must be under grow_above"),
        ({"grow_wait": -1.0}, "grow_wait must be >= 0"),
        ({"shrink_after": float("nan")}, "shrink_after must be >= 0"),
        ({"grow_interval": -0.01}, "grow_interval must be >= 0"),
        ({"steps": ()}, "factors above 1.0"),
        ({"steps": ((0.5, 1.0),)}, "factors above 1.0"),
    ],
)
def test_invalid_policies_are_refused_where_they_are_made(
    options: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        PoolPolicy(**options)  # type: ignore[arg-type]


def test_thresholds_are_configurable() -> None:
    policy = PoolPolicy(min=1, max=10, grow_above=0.5, grow_wait=0.1, grow_interval=0.0)
    sizer = Sizer(policy)
    assert sizer.decide(0.0, size=4, active=3) == 8  # 75 % > 50 %
    assert sizer.decide(1.0, size=8, active=1, oldest_wait=0.05) == 8  # 50 ms < 100 ms
    custom = PoolPolicy(min=1, max=100, steps=((1.0, 3.0),))
    assert custom.grown(10) == 30 and custom.grown(90) == 100
