"""The phi-accrual failure detector, with explicit times."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trouper._errors import ConfigurationError
from trouper.protocols import PhiAccrualDetector


def akka_phi(time_diff: float, mean: float, std: float) -> float:
    """Akka's PhiAccrualFailureDetector.phi, transcribed literally."""
    y = (time_diff - mean) / std
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    if time_diff > mean:
        return -math.log10(e / (1.0 + e))
    return -math.log10(1.0 - 1.0 / (1.0 + e))


def steady(interval: float = 1.0, beats: int = 20, **kw: float) -> PhiAccrualDetector:
    detector = PhiAccrualDetector(window=10, **kw)
    for k in range(beats):
        detector.heartbeat(k * interval)
    return detector


def test_nothing_suspected_before_the_first_heartbeat() -> None:
    detector = PhiAccrualDetector()
    assert detector.phi(1e9) == 0.0
    assert detector.is_available(1e9)
    assert detector.unavailable_at() is None


def test_first_heartbeat_seeds_the_history() -> None:
    detector = PhiAccrualDetector(first_interval=2.0)
    detector.heartbeat(100.0)
    assert detector.mean == pytest.approx(2.0)
    assert detector.std == pytest.approx(0.5)
    assert detector.phi(102.0) == pytest.approx(math.log10(2))


def test_steady_heartbeats_keep_phi_low() -> None:
    detector = steady()
    last = 19.0
    assert detector.mean == pytest.approx(1.0)
    assert detector.std == pytest.approx(0.1)  # zero variance, floored at min_std
    assert detector.phi(last + 0.5) < 1e-3
    assert detector.phi(last + 1.0) == pytest.approx(math.log10(2))  # right on time
    assert detector.is_available(last + 1.2)


@pytest.mark.parametrize("elapsed", [0.0, 0.3, 0.9, 1.0, 1.05, 1.2, 1.4, 1.6, 2.0])
def test_matches_akka(elapsed: float) -> None:
    detector = steady()
    assert detector.phi(19.0 + elapsed) == pytest.approx(akka_phi(elapsed, 1.0, 0.1), rel=1e-9)


def test_silence_crosses_the_threshold_at_a_computable_time() -> None:
    detector = steady()
    # Independent answer: bisect Akka's formula for phi == 8.
    lo, hi = 1.0, 3.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if akka_phi(mid, 1.0, 0.1) < 8.0 else (lo, mid)
    expected = 19.0 + lo
    at = detector.unavailable_at()
    assert at is not None
    assert at == pytest.approx(expected, abs=1e-9)
    assert detector.phi(at) == pytest.approx(8.0, rel=1e-9)
    assert detector.is_available(at - 1e-6)
    assert not detector.is_available(at + 1e-6)
    assert 19.0 + 1.5 < at < 19.0 + 1.55  # about 5.2 standard deviations late
    # phi keeps growing with the silence.
    assert detector.phi(at + 1.0) > detector.phi(at + 0.5) > 8.0


def test_huge_silence_is_finite_and_early_beats_are_zero() -> None:
    detector = steady()
    assert math.isfinite(detector.phi(1e12))
    assert detector.phi(1e12) > 1e6
    assert detector.phi(-1e12) == 0.0


def test_acceptable_pause_delays_suspicion() -> None:
    plain = steady()
    tolerant = steady(acceptable_pause=3.0)
    at_plain = plain.unavailable_at()
    at_tolerant = tolerant.unavailable_at()
    assert at_plain is not None and at_tolerant is not None
    assert at_tolerant == pytest.approx(at_plain + 3.0)
    assert tolerant.is_available(at_plain + 1.0)


def test_jittery_heartbeats_widen_the_distribution() -> None:
    detector = PhiAccrualDetector(window=10)
    t = 0.0
    for k in range(30):
        t += 0.5 if k % 2 else 1.5
        detector.heartbeat(t)
    assert detector.mean == pytest.approx(1.0)
    assert detector.std == pytest.approx(0.5)
    assert detector.is_available(t + 2.0)  # phi(2 s) is low with std 0.5 ...
    assert not steady().is_available(19.0 + 2.0)  # ... but not with std 0.1


def test_gap_after_suspicion_is_not_learned() -> None:
    detector = steady()
    detector.heartbeat(19.0 + 60.0)  # back after a minute: not a normal interval
    assert detector.mean == pytest.approx(1.0)
    detector.heartbeat(19.0 + 61.0)
    assert detector.mean == pytest.approx(1.0)
    assert detector.last_heartbeat == 80.0


def test_clock_going_backwards_is_ignored() -> None:
    detector = steady()
    detector.heartbeat(5.0)
    assert detector.last_heartbeat == 19.0
    assert detector.mean == pytest.approx(1.0)


def test_window_keeps_only_recent_intervals() -> None:
    detector = PhiAccrualDetector(window=5)
    t = 0.0
    detector.heartbeat(t)
    for _ in range(20):
        t += 3.0
        detector.heartbeat(t)
    for _ in range(5):
        t += 1.0
        detector.heartbeat(t)
    assert detector.mean == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=400), st.integers(1, 50))
def test_running_stats_match_a_recomputation(intervals: list[float], window: int) -> None:
    detector = PhiAccrualDetector(window=window, threshold=1e9)
    t = 0.0
    detector.heartbeat(t)
    for dt in intervals:
        t += dt
        detector.heartbeat(t)
    recent = ([0.75, 1.25, *intervals])[-window:]
    mean = sum(recent) / len(recent)
    std = math.sqrt(sum((x - mean) ** 2 for x in recent) / len(recent))
    assert detector.mean == pytest.approx(mean, rel=1e-6)
    assert detector.std == pytest.approx(max(std, 0.1), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"window": 0},
        {"min_std": 0.0},
        {"acceptable_pause": -1.0},
        {"first_interval": 0.0},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PhiAccrualDetector(**kwargs)  # type: ignore[arg-type]
