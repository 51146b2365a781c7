"""Credit windows for streams, and the token bucket."""

from __future__ import annotations

import math
import random

import pytest

from trouper._errors import ConfigurationError, ProtocolError
from trouper.protocols import CreditGranter, CreditWindow, TokenBucket

# -- credit window -------------------------------------------------------------


def test_credit_window_basics() -> None:
    window = CreditWindow(2)
    assert window.can_send and window.available == 2
    window.consume()
    window.consume()
    assert not window.can_send
    with pytest.raises(ProtocolError, match="credit exceeded"):
        window.consume()
    window.grant(3)
    assert window.available == 3
    window.consume(3)
    assert not window.can_send


def test_credit_window_rejects_bad_counts() -> None:
    with pytest.raises(ConfigurationError):
        CreditWindow(-1)
    assert not CreditWindow(0).can_send
    with pytest.raises(ProtocolError):
        CreditWindow(1).grant(0)
    with pytest.raises(ValueError):
        CreditWindow(1).consume(0)


def test_granter_batches_credit_at_half_the_window() -> None:
    granter = CreditGranter(8)
    assert granter.initial == 8 and granter.threshold == 4
    for _ in range(8):
        granter.on_item()
    assert granter.outstanding == 0 and granter.buffered == 8
    with pytest.raises(ProtocolError):
        granter.on_item()  # the producer overran its credit


def test_granter_grants_what_was_processed() -> None:
    granter = CreditGranter(8, threshold=3)
    for _ in range(5):
        granter.on_item()
    assert granter.on_processed() == 0
    assert granter.on_processed() == 0
    assert granter.on_processed() == 3
    assert granter.outstanding == 6
    assert granter.on_processed(2) == 0
    assert granter.buffered == 0
    with pytest.raises(ValueError):
        granter.on_processed()  # nothing left to process


def test_granter_bad_parameters() -> None:
    with pytest.raises(ConfigurationError):
        CreditGranter(0)
    with pytest.raises(ConfigurationError):
        CreditGranter(4, threshold=5)
    assert CreditGranter(1).threshold == 1


@pytest.mark.parametrize("seed", range(5))
def test_producer_and_consumer_never_exceed_the_window(seed: int) -> None:
    rng = random.Random(seed)
    granter = CreditGranter(16)
    producer = CreditWindow(granter.initial)
    in_flight = 0  # items sent, not yet received
    credit_in_flight: list[int] = []
    delivered = 0
    while delivered < 1000:
        action = rng.random()
        if action < 0.4 and producer.can_send:
            producer.consume()
            in_flight += 1
        elif action < 0.7 and in_flight:
            in_flight -= 1
            granter.on_item()
        elif action < 0.9 and granter.buffered:
            n = granter.on_processed()
            delivered += 1
            if n:
                credit_in_flight.append(n)
        elif credit_in_flight:
            producer.grant(credit_in_flight.pop(0))
        assert granter.buffered + in_flight <= 16


# -- token bucket --------------------------------------------------------------


def test_bucket_starts_full_and_refills_at_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=5)
    assert all(bucket.try_take(100.0) for _ in range(5))
    assert not bucket.try_take(100.0)
    assert bucket.delay_until_available(100.0) == pytest.approx(0.1)
    assert not bucket.try_take(100.05)
    assert bucket.try_take(100.1)
    assert bucket.tokens(1000.0) == 5  # capped at burst


def test_bucket_takes_all_or_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=4)
    assert bucket.try_take(0.0, 3)
    assert not bucket.try_take(0.0, 2)
    assert bucket.tokens(0.0) == 1
    assert bucket.delay_until_available(0.0, 2) == pytest.approx(1.0)
    assert bucket.try_take(1.0, 2)


def test_bucket_impossible_requests() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    assert not bucket.try_take(0.0, 3)
    assert bucket.delay_until_available(0.0, 3) == math.inf
    frozen = TokenBucket(rate=0.0, burst=1)
    assert frozen.try_take(0.0)
    assert frozen.delay_until_available(1e9) == math.inf
    assert bucket.delay_until_available(0.0, 0) == 0.0
    with pytest.raises(ValueError):
        bucket.try_take(0.0, -1)


def test_bucket_clock_going_backwards_refills_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=2)
    bucket.try_take(10.0, 2)
    assert not bucket.try_take(5.0)
    assert bucket.tokens(10.5) == pytest.approx(0.5)


def test_bucket_long_run_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=10)
    taken = sum(bucket.try_take(k * 0.001) for k in range(10_000))  # 10 s, 1000 tries/s
    assert 1005 <= taken <= 1011  # 10 s at 100/s, plus the initial burst


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1.0, 1.0), (1.0, 0.0), (1.0, math.inf), (math.nan, 1.0)]
)
def test_bucket_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ConfigurationError):
        TokenBucket(rate, burst)
