"""The repeat limiter behind the rate limiting of repeated warnings: pure,
time passed in, checked against its promises with hypothesis."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trouper import ConfigurationError
from trouper.observability import RepeatFilter, RepeatLimiter
from trouper.observability._logs import repeat_key

WINDOW = 10.0

# (key, seconds since the previous record): time only moves forward.
events = st.lists(
    st.tuples(st.integers(0, 4), st.floats(0, 2 * WINDOW, allow_nan=False)), max_size=200
)


def replay(
    limiter: RepeatLimiter, steps: list[tuple[int, float]]
) -> list[tuple[int, float, bool, int]]:
    now, out = 0.0, []
    for key, gap in steps:
        now += gap
        verdict = limiter.check(key, now)
        out.append((key, now, verdict.emit, verdict.suppressed))
    return out


@given(events)
def test_nothing_is_lost_only_counted(steps: list[tuple[int, float]]) -> None:
    """Per key: emitted + summaries reported + still pending == records seen,
    and only an emitted record carries a summary."""
    limiter = RepeatLimiter(WINDOW, max_keys=16)
    seen = replay(limiter, steps)
    for key in {k for k, *_ in seen}:
        mine = [s for s in seen if s[0] == key]
        emitted = sum(1 for _, _, emit, _ in mine if emit)
        reported = sum(n for _, _, _, n in mine)
        # the records dropped after the last emitted one are still pending
        last = max(i for i, s in enumerate(mine) if s[2])
        pending = len(mine) - last - 1
        assert emitted + reported + pending == len(mine)
        assert all(n == 0 for _, _, emit, n in mine if not emit)
    stats = limiter.statistics()
    assert stats.emitted + stats.suppressed == len(steps) and stats.lost == 0


@given(events)
def test_one_line_per_window_and_the_first_always(steps: list[tuple[int, float]]) -> None:
    seen = replay(RepeatLimiter(WINDOW), steps)
    for key in {k for k, *_ in seen}:
        mine = [s for s in seen if s[0] == key]
        assert mine[0][2], "the first record of a key always goes out"
        times = [t for _, t, emit, _ in mine if emit]
        assert all(b - a >= WINDOW for a, b in itertools.pairwise(times))
        # ...and a record a whole window after the last emitted one goes out
        last_emit = mine[0][1]
        for _, t, emit, _ in mine[1:]:
            assert emit == (t - last_emit >= WINDOW)
            if emit:
                last_emit = t


@given(st.lists(st.integers(0, 1000), max_size=300), st.integers(1, 20))
def test_the_key_table_is_bounded(keys: list[int], bound: int) -> None:
    limiter = RepeatLimiter(WINDOW, max_keys=bound)
    for i, key in enumerate(keys):
        limiter.check(key, float(i) / 1000)
        assert limiter.statistics().keys <= bound


def test_a_wrong_cookie_every_two_seconds_for_an_hour() -> None:
    limiter = RepeatLimiter(60.0)
    verdicts = [limiter.check("link", t * 2.0) for t in range(1800)]
    emitted = [v for v in verdicts if v.emit]
    assert len(emitted) == 60
    assert emitted[0].suppressed == 0 and all(v.suppressed == 29 for v in emitted[1:])


@pytest.mark.parametrize(("window", "keys"), [(0, 10), (-1.0, 10), (float("nan"), 10), (1.0, 0)])
def test_bad_settings_are_refused(window: float, keys: int) -> None:
    with pytest.raises(ConfigurationError):
        RepeatLimiter(window, max_keys=keys)


def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("trouper.remote", level, __file__, 1, msg, args, None)


def test_the_key_is_who_not_how_many() -> None:
    a = record("node %s: %d connections in the handshake already", "b", 64)
    b = record("node %s: %d connections in the handshake already", "b", 65)
    c = record("node %s: %d connections in the handshake already", "c", 64)
    assert repeat_key(a) == repeat_key(b) != repeat_key(c)
    given_key = record("anything %s", 1)
    given_key.repeat_key = "peer-x"
    assert repeat_key(given_key) != repeat_key(record("anything %s", 1))


def test_the_filter_drops_repeats_and_summarises() -> None:
    """Real time here (the filter reads the monotonic clock): a window no test
    run reaches, so the second record is always dropped."""
    repeats = RepeatFilter(RepeatLimiter(3600.0))
    assert repeats.filter(record("link %s -> %s: %s", "a", "tcp://x", "refused"))
    assert not repeats.filter(record("link %s -> %s: %s", "a", "tcp://x", "refused"))
    # below WARNING nothing is limited
    info = [record("hello %s", "a", level=logging.INFO) for _ in range(3)]
    assert all(repeats.filter(r) for r in info)
    # the window ends (shortened here rather than waited for): the next one
    # goes out and says how many were dropped
    limiter = repeats.limiter
    assert limiter is not None
    limiter.window = 1e-9
    third = record("link %s -> %s: %s", "a", "tcp://x", "refused")
    assert repeats.filter(third)
    assert third.suppressed == 1
    assert third.getMessage() == "link a -> tcp://x: refused [suppressed 1 similar]"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str")


def test_an_argument_that_cannot_be_shown_does_not_make_logging_raise() -> None:
    repeats = RepeatFilter(RepeatLimiter(3600.0))
    assert repeats.filter(record("odd %s", Unprintable()))
    assert not repeats.filter(record("odd %s", Unprintable()))
