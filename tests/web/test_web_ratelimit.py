"""The per-client token buckets (sans-IO): the rate holds, memory is bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper.web import RateLimit
from trouper.web._ratelimit import TokenBuckets

steps = st.lists(
    st.tuples(st.integers(0, 5), st.floats(0, 2, allow_nan=False)), min_size=1, max_size=200
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps,
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
    max_clients=st.integers(1, 8),
)
def test_no_client_gets_more_than_burst_plus_rate(
    steps: list[tuple[int, float]], rate: float, burst: int, max_clients: int
) -> None:
    buckets = TokenBuckets(RateLimit(rate=rate, burst=burst, max_clients=max_clients))
    now = 0.0
    granted: dict[int, list[float]] = {}
    for client, dt in steps:
        now += dt
        wait = buckets.take(client, now)
        assert wait >= 0
        if wait == 0:
            granted.setdefault(client, []).append(now)
        else:
            assert wait <= 1 / rate + 1e-9
        assert len(buckets) <= max_clients
    if max_clients >= 6:  # nobody was forgotten: the bound is exact
        for times in granted.values():
            for i, start in enumerate(times):
                for j in range(i, len(times)):
                    allowed = burst + rate * (times[j] - start) + 1e-6
                    assert j - i + 1 <= allowed


def test_waiting_the_answer_is_enough_and_idle_clients_are_forgotten() -> None:
    buckets = TokenBuckets(RateLimit(rate=2, burst=2, max_clients=2))
    assert buckets.take("a", 0.0) == buckets.take("a", 0.0) == 0.0
    wait = buckets.take("a", 0.0)
    assert wait == pytest.approx(0.5)
    assert buckets.take("a", wait) == 0.0
    buckets.take("b", 1.0)
    buckets.take("c", 1.0)  # evicts "a", the least recently used
    assert len(buckets) == 2 and buckets.evicted == 1
    with pytest.raises(trouper.ConfigurationError, match="rate"):
        RateLimit(rate=0)
