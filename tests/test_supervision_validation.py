"""Strategies, Backoff and child specs refuse nan, inf and nonsense, by name.

Pure: no node, no trio. Each refusal must name the field and the value, and a
misspelt choice the one probably meant, so the error reads as a fix.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper import Backoff, OneForAll, OneForOne, RestForOne
from trouper.supervisors._strategy import (
    check_mailbox_size,
    check_restart,
    check_shutdown,
)

NAN = math.nan
INF = math.inf
#: values no number field accepts: not finite, not numbers, or bools
NOT_A_NUMBER = [NAN, INF, -INF, True, False, "1", None, [1], 10**400]


class Worker(trouper.Actor):
    pass


def refused(match: str) -> Any:
    return pytest.raises(trouper.ConfigurationError, match=match)


# ------------------------------------------------------------------ Backoff


@pytest.mark.parametrize("field", ["initial", "maximum", "jitter", "multiplier"])
@pytest.mark.parametrize("value", NOT_A_NUMBER, ids=repr)
def test_backoff_refuses_what_is_not_a_finite_number(field: str, value: object) -> None:
    with refused(rf"Backoff\.{field} must be .*, not {_re(value)}$"):
        Backoff(**{field: value})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -1.0}, r"Backoff\.initial must be a finite number >= 0, not -1\.0"),
        ({"maximum": -0.5, "initial": 0}, r"Backoff\.maximum must be a finite number >= 0"),
        ({"initial": 2.0, "maximum": 1.0}, r"Backoff\.maximum must be >= Backoff\.initial"),
        ({"jitter": 1.5}, r"Backoff\.jitter must be a finite number between 0 and 1, not 1\.5"),
        ({"jitter": -0.1}, r"Backoff\.jitter .*, not -0\.1"),
        ({"multiplier": 0}, r"Backoff\.multiplier must be a finite number >= 1, not 0$"),
        ({"multiplier": 0.5}, r"Backoff\.multiplier .*, not 0\.5"),
        ({"multiplier": -2.0}, r"Backoff\.multiplier .*, not -2\.0"),
    ],
)
def test_backoff_refuses_nonsense(kwargs: dict[str, Any], message: str) -> None:
    with refused(message):
        Backoff(**kwargs)


def test_backoff_accepts_the_edges() -> None:
    Backoff(initial=0, maximum=0, jitter=0, multiplier=1)  # restart at once, always
    Backoff(initial=1, maximum=1, jitter=1, multiplier=1)  # a constant delay, fully jittered
    Backoff(initial=0.5, maximum=10**6, multiplier=10)  # ints are numbers


def test_backoff_delay_survives_huge_attempts() -> None:
    rng = random.Random(0)
    # 2.0 ** 5000 overflows a float and 2 ** 5000 is an int too large for one
    assert Backoff(initial=0.01, maximum=1.0, jitter=0.0).delay(5000, rng) == 1.0
    assert Backoff(initial=0.01, maximum=1.0, jitter=0.0, multiplier=2).delay(5000, rng) == 1.0
    assert Backoff(initial=0.0, maximum=1.0, jitter=0.0).delay(5000, rng) == 0.0
    assert Backoff(initial=0.1, maximum=0.1, multiplier=1).delay(10**9, rng) <= 0.1


finite = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@settings(max_examples=300, derandomize=True)
@given(
    initial=finite,
    spread=finite,
    jitter=st.floats(min_value=0, max_value=1),
    multiplier=st.floats(min_value=1, max_value=100),
    attempt=st.integers(min_value=-5, max_value=100_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_delay_stays_within_bounds(
    initial: float, spread: float, jitter: float, multiplier: float, attempt: int, seed: int
) -> None:
    backoff = Backoff(
        initial=initial, maximum=initial + spread, jitter=jitter, multiplier=multiplier
    )
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= backoff.maximum
    assert math.isfinite(delay)


@settings(max_examples=300, derandomize=True)
@given(
    field=st.sampled_from(["initial", "maximum", "jitter", "multiplier"]),
    value=st.one_of(st.floats(), st.integers(), st.booleans(), st.none(), st.text(max_size=3)),
)
def test_backoff_either_builds_a_sane_value_or_refuses(field: str, value: object) -> None:
    try:
        backoff = Backoff(**{field: value})
    except trouper.ConfigurationError as exc:
        assert f"Backoff.{field}" in str(exc)
        return
    assert all(math.isfinite(x) for x in (backoff.initial, backoff.maximum, backoff.multiplier))
    assert 0 <= backoff.initial <= backoff.maximum
    assert 0 <= backoff.jitter <= 1 and backoff.multiplier >= 1


# ---------------------------------------------------------------- Strategies

STRATEGIES = [OneForOne, OneForAll, RestForOne]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("value", [INF, NAN, -1, 1.5, 3.0, True, "3", None], ids=repr)
def test_max_restarts_is_an_int(strategy: type[trouper.Strategy], value: object) -> None:
    with refused(rf"{strategy.__name__}\.max_restarts must be an int >= 0, not {_re(value)}$"):
        strategy(max_restarts=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("value", [0, 0.0, -1.0, NAN, INF, True, "5", None], ids=repr)
def test_within_is_finite_and_positive(strategy: type[trouper.Strategy], value: object) -> None:
    with refused(rf"{strategy.__name__}\.within must be a finite number > 0, not {_re(value)}$"):
        strategy(within=value)  # type: ignore[arg-type]


def test_strategy_refuses_a_bad_backoff_or_decider() -> None:
    with refused(r"OneForAll\.backoff must be a Backoff, not 0\.1"):
        OneForAll(backoff=0.1)  # type: ignore[arg-type]
    with refused(r"RestForOne\.decider must be callable, not 'restart'"):
        RestForOne(decider="restart")  # type: ignore[arg-type]


def test_strategy_accepts_the_edges() -> None:
    assert OneForOne(max_restarts=0, within=1e-9).max_restarts == 0
    assert OneForAll(max_restarts=10**12, within=10**6).within == 10**6


# --------------------------------------------------------- restart / shutdown


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("prmanent", "permanent"), ("Transient", "transient"), ("temprary", "temporary")],
)
def test_restart_typo_names_the_closest(typo: str, meant: str) -> None:
    message = rf"restart must be one of .*, not '{typo}' \(did you mean '{meant}'\?\)$"
    with refused(message):
        check_restart(typo)
    with refused(message):
        trouper.child(Worker, restart=typo)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["sometimes", "", None, 1, True], ids=repr)
def test_restart_without_a_close_one(value: object) -> None:
    with refused(
        rf"restart must be one of 'permanent', 'transient', 'temporary', not {_re(value)}$"
    ):
        check_restart(value)


def test_restart_types_pass() -> None:
    for restart in ("permanent", "transient", "temporary"):
        assert check_restart(restart) == restart
        assert trouper.child(Worker, restart=restart).restart == restart  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-10, -0.001, NAN, INF, -INF, True, None, "5", 10**400], ids=repr)
def test_shutdown_refuses_what_cannot_be_waited_for(value: object) -> None:
    message = (
        rf"shutdown must be a finite number of seconds >= 0 or 'brutal_kill', not {_re(value)}$"
    )
    with refused(message):
        check_shutdown(value)
    with refused(message):
        trouper.child(Worker, shutdown=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("typo", ["brutal", "brutal-kill", "BRUTAL_KILL", "brutalkill"])
def test_shutdown_typo_names_brutal_kill(typo: str) -> None:
    with refused(rf"not '{typo}' \(did you mean 'brutal_kill'\?\)$"):
        check_shutdown(typo)


def test_shutdown_values_pass() -> None:
    assert check_shutdown("brutal_kill") == "brutal_kill"
    assert check_shutdown(0) == 0
    assert check_shutdown(2.5) == 2.5
    assert trouper.child(Worker, shutdown="brutal_kill").shutdown == "brutal_kill"
    assert trouper.child(Worker, shutdown=0).shutdown == 0


@pytest.mark.parametrize("value", [0, -1, 1.5, 10.0, True, "10", NAN], ids=repr)
def test_mailbox_size_is_none_or_a_positive_int(value: object) -> None:
    with refused(rf"mailbox_size must be an int >= 1, not {_re(value)}$"):
        check_mailbox_size(value)
    with refused(r"mailbox_size must be"):
        trouper.child(Worker, mailbox_size=value)  # type: ignore[arg-type]
    assert check_mailbox_size(None) is None
    assert check_mailbox_size(1) == 1


@pytest.mark.parametrize("cls", [object, "Worker", None, Worker()], ids=repr)
def test_child_needs_an_actor_class(cls: object) -> None:
    with refused(r"a child spec needs an Actor subclass, not "):
        trouper.child(cls)  # type: ignore[arg-type]


def _re(value: object) -> str:
    """``repr(value)`` as a regular expression."""
    return re.escape(repr(value))
