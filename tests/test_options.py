"""trouper._options: unknown names are reported in the caller's words."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trouper
from trouper._options import check_options, closest, suggestion

NODE_OPTIONS = ["listen", "seeds", "cookie", "tls", "allow_spawn", "heartbeat_interval"]


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("listn", "listen"),
        ("seed", "seeds"),
        ("coookie", "cookie"),
        ("allowspawn", "allow_spawn"),
        ("allow-spawn", "allow_spawn"),
        ("heartbeat_intervall", "heartbeat_interval"),
        ("LISTEN", "listen"),
    ],
)
def test_closest_finds_the_typo(typo: str, meant: str) -> None:
    assert closest(typo, NODE_OPTIONS) == meant


def test_closest_gives_up_on_unrelated_names() -> None:
    assert closest("zzz", NODE_OPTIONS) is None
    assert closest("listen", []) is None
    assert closest("", NODE_OPTIONS) is None


def test_closest_is_stable_on_ties() -> None:
    # Equally close to both: the earlier candidate wins, every time.
    assert closest("abcx", ["abcy", "abcz"]) == "abcy"
    assert closest("abcx", ["abcz", "abcy"]) == "abcz"


def test_unknown_option_names_itself_and_the_closest() -> None:
    with pytest.raises(trouper.ConfigurationError) as info:
        check_options({"listn": "tcp://127.0.0.1:0", "cookie": "c"}, NODE_OPTIONS)
    assert str(info.value) == "unknown node option 'listn' (did you mean 'listen'?)"


def test_unknown_option_without_a_close_one_lists_the_valid_ones() -> None:
    with pytest.raises(trouper.ConfigurationError) as info:
        check_options(["frobnicate"], ["b", "a"], what="store option")
    assert str(info.value) == "unknown store option 'frobnicate' (valid: 'a', 'b')"


def test_every_unknown_option_is_reported_in_order() -> None:
    with pytest.raises(trouper.ConfigurationError) as info:
        check_options(["sedes", "cookie", "listn"], NODE_OPTIONS)
    assert str(info.value) == (
        "unknown node options 'sedes' (did you mean 'seeds'?), 'listn' (did you mean 'listen'?)"
    )


def test_known_options_pass_and_one_string_is_one_name() -> None:
    check_options({}, NODE_OPTIONS)
    check_options({"listen": 1, "tls": None}, NODE_OPTIONS)
    check_options(iter(["seeds"]), iter(NODE_OPTIONS))
    check_options("listen", NODE_OPTIONS)  # not the letters l, i, s...
    with pytest.raises(trouper.ConfigurationError, match="'lisen'"):
        check_options("lisen", NODE_OPTIONS)


def test_suggestion_with_nothing_valid() -> None:
    assert suggestion("x", []) == " (none are valid here)"
    with pytest.raises(trouper.ConfigurationError, match=r"option 'x' \(none are valid here\)"):
        check_options(["x"], [], what="option")


names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)


@settings(max_examples=200, derandomize=True)
@given(name=names, pool=st.lists(names, max_size=8))
def test_closest_is_always_a_candidate_or_none(name: str, pool: list[str]) -> None:
    match = closest(name, pool)
    assert match is None or match in pool
    if name in pool:
        assert match == name


@settings(max_examples=200, derandomize=True)
@given(given_names=st.lists(names, max_size=6), pool=st.lists(names, max_size=6))
def test_check_options_raises_exactly_for_unknown_names(
    given_names: list[str], pool: list[str]
) -> None:
    unknown = [n for n in given_names if n not in pool]
    if not unknown:
        check_options(given_names, pool)
        return
    with pytest.raises(trouper.ConfigurationError) as info:
        check_options(given_names, pool)
    for name in unknown:
        assert repr(name) in str(info.value)
