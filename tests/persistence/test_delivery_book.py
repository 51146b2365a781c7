"""The sans-IO halves of at-least-once delivery: the sender's DeliveryBook
(ids, backoff, bound) and the receiver's Deduplicator, with time as a
parameter and hypothesis driving sequences of operations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import trouper
from trouper.persistence import Deduplicator, TooManyUnconfirmed
from trouper.persistence._book import DeliveryBook


def book(limit: int = 100) -> DeliveryBook:
    return DeliveryBook(interval=1.0, max_interval=8.0, limit=limit)


def test_ids_count_up_and_a_new_delivery_is_due_at_once() -> None:
    b = book()
    assert [b.add("to", f"m{i}", now=0.0) for i in range(3)] == [1, 2, 3]
    assert b.due(0.0) == [(1, "to", "m0"), (2, "to", "m1"), (3, "to", "m2")]
    assert b.due(0.5) == []  # not before the interval
    assert b.confirm(2) and not b.confirm(2) and not b.confirm(99)
    assert [i for i, _, _ in b.due(1.0)] == [1, 3]
    s = b.statistics()
    assert (s.unconfirmed, s.delivered, s.confirmed, s.sends, s.redeliveries) == (2, 3, 1, 5, 2)


def test_backoff_doubles_up_to_the_ceiling() -> None:
    b = book()
    b.add("to", "m", now=0.0)
    sent_at = []
    now = 0.0
    while now < 60:
        if b.due(now):
            sent_at.append(now)
        now += 0.25
    # 0, +1, +2, +4, +8, then every 8 (the ceiling)
    assert sent_at[:7] == [0.0, 1.0, 3.0, 7.0, 15.0, 23.0, 31.0]
    assert b.next_due() == sent_at[-1] + 8.0


def test_the_bound_refuses_live_deliveries_but_never_a_replay() -> None:
    b = book(limit=2)
    b.add("to", 1, now=0.0)
    b.add("to", 2, now=0.0)
    with pytest.raises(TooManyUnconfirmed) as info:
        b.add("to", 3, now=0.0)
    assert info.value.is_retryable and isinstance(info.value, trouper.MailboxFull)
    assert b.add("to", 3, now=0.0, replay=True) == 3  # accepted once: always replayed
    assert len(b) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"interval": 0, "max_interval": 1, "limit": 1},
        {"interval": float("nan"), "max_interval": 1, "limit": 1},
        {"interval": 1, "max_interval": float("inf"), "limit": 1},
        {"interval": 1, "max_interval": 1, "limit": 0},
        {"interval": True, "max_interval": 1, "limit": 1},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(trouper.ConfigurationError):
        DeliveryBook(**kwargs)  # type: ignore[arg-type]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.floats(0, 5)),
        st.tuples(st.just("confirm"), st.integers(1, 30)),
        st.tuples(st.just("tick"), st.floats(0, 5)),
    ),
    max_size=80,
)


@given(ops)
def test_the_book_keeps_its_invariants(steps: list[tuple[str, float]]) -> None:
    b = DeliveryBook(interval=0.5, max_interval=4.0, limit=10)
    now = 0.0
    model: set[int] = set()
    for op, arg in steps:
        if op == "add":
            now += arg
            if len(model) >= 10:
                with pytest.raises(TooManyUnconfirmed):
                    b.add("to", None, now)
            else:
                model.add(b.add("to", None, now))
        elif op == "confirm":
            assert b.confirm(int(arg)) == (int(arg) in model)
            model.discard(int(arg))
        else:
            now += arg
            sent = [i for i, _, _ in b.due(now)]
            assert set(sent) <= model and sent == sorted(sent)
            nxt = b.next_due()
            assert nxt is None or nxt > now  # whatever was due has been rescheduled
        assert set(b.pending_ids()) == model and len(b) <= 10
    s = b.statistics()
    assert s.unconfirmed == len(model) and s.delivered == b.next_id - 1


def test_the_deduplicator_drops_repeats_within_its_window() -> None:
    d = Deduplicator(window=3)
    assert [d.first_time(k) for k in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    # "b" is the oldest seen now ("a" was refreshed by its duplicate): it went first
    assert d.first_time("a") is False and d.first_time("b") is True
    assert d.duplicates == 2 and len(d) == 3
    with pytest.raises(trouper.ConfigurationError):
        Deduplicator(window=0)


@given(st.lists(st.integers(0, 20), max_size=200), st.integers(1, 10))
def test_the_deduplicator_never_drops_a_first_and_stays_bounded(keys: list[int], w: int) -> None:
    d = Deduplicator(window=w)
    seen_ever: set[int] = set()
    recent: list[int] = []
    for k in keys:
        first = d.first_time(k)
        if k not in seen_ever:
            assert first  # a key never seen is always processed
        if not first:
            assert k in recent[-w:]  # a drop is always a recent repeat
        seen_ever.add(k)
        if k in recent:
            recent.remove(k)
        recent.append(k)
        assert len(d) <= w
