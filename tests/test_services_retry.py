"""Retry policy and retry budget: pure, time passed in."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper import Backoff, ConfigurationError
from trouper.services import Retry, RetryBudget
from trouper.services._retry import DEFAULT_BACKOFF


def test_retry_defaults() -> None:
    retry = Retry()
    assert (retry.attempts, retry.backoff, retry.budget) == (3, None, 0.2)
    rng = random.Random(1)
    assert 0 < retry.delay(0, rng) <= DEFAULT_BACKOFF.maximum
    assert retry.make_budget().ratio == 0.2


def test_retry_uses_its_backoff() -> None:
    retry = Retry(attempts=5, backoff=Backoff(initial=0.5, maximum=2.0, jitter=0.0))
    rng = random.Random(0)
    assert [retry.delay(i, rng) for i in range(4)] == [0.5, 1.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempts": 0}, "Retry.attempts"),
        ({"attempts": -1}, "Retry.attempts"),
        ({"attempts": 2.0}, "Retry.attempts"),
        ({"attempts": True}, "Retry.attempts"),
        ({"budget": math.nan}, "Retry.budget"),
        ({"budget": math.inf}, "Retry.budget"),
        ({"budget": -0.1}, "Retry.budget"),
        ({"budget": 1.5}, "Retry.budget"),
        ({"budget": "0.2"}, "Retry.budget"),
        ({"backoff": 0.1}, "Retry.backoff"),
    ],
)
def test_retry_refuses_bad_values_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((math.nan,), "RetryBudget.ratio"),
        ((2.0,), "RetryBudget.ratio"),
        ((0.2, -1.0), "RetryBudget.min_per_second"),
        ((0.2, math.inf), "RetryBudget.min_per_second"),
        ((0.2, 1.0, 0.0), "RetryBudget.window"),
        ((0.2, 1.0, math.nan), "RetryBudget.window"),
    ],
)
def test_budget_refuses_bad_values(args: tuple[float, ...], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        RetryBudget(*args)


def test_budget_caps_retries_at_the_ratio_plus_the_floor() -> None:
    budget = RetryBudget(0.2, min_per_second=0.5, window=10.0)  # floor: 5 retries
    for i in range(100):
        budget.record_call(1.0 + i * 0.01)
    spent = 0
    while budget.try_spend(2.0):
        spent += 1
    assert spent == 20 + 5
    # The window slides: old calls and retries age out, the floor stays.
    assert budget.try_spend(12.5)
    spent = 1
    while budget.try_spend(12.5):
        spent += 1
    assert spent == 5


def test_zero_budget_and_zero_floor_allows_no_retry() -> None:
    budget = RetryBudget(0.0, min_per_second=0.0)
    budget.record_call(0.0)
    assert not budget.try_spend(0.0)


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.floats(0, 1),
    floor=st.floats(0, 5),
    window=st.floats(0.5, 20),
    ops=st.lists(
        st.tuples(st.sampled_from(["call", "retry"]), st.floats(0, 3)), min_size=1, max_size=200
    ),
)
def test_budget_never_allows_more_than_ratio_times_calls_in_the_window(
    ratio: float, floor: float, window: float, ops: list[tuple[str, float]]
) -> None:
    budget = RetryBudget(ratio, min_per_second=floor, window=window)
    now = 0.0
    for op, step in ops:
        now += step
        if op == "call":
            before = budget.available(now)
            budget.record_call(now)
            assert budget.available(now) >= before  # a call never takes budget away
        else:
            budget.available(now)  # ages out what left the window first
            spent_before = budget.retries
            allowed = budget.try_spend(now)
            assert budget.retries == spent_before + (1 if allowed else 0)
        # What the window holds never breaks the cap (plus float slack).
        assert budget.retries <= ratio * budget.calls + floor * window + 1e-9
        assert len(budget._slices) <= 10
