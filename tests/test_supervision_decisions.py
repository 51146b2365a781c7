"""The supervision decision table, tested without Trio (``supervisors/_decision``).

Every row of the table, the decider's three answers, the intensity window,
and which siblings a restart takes: pure values in, an ``Action`` out.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trouper.supervisors._decision import TABLE, Action, Exit, decide, plan_restart
from trouper.supervisors._strategy import RESTART_TYPES, OneForAll, OneForOne, RestForOne


def never() -> str:
    raise AssertionError("not consulted")


def test_the_table_covers_every_restart_type_and_exit() -> None:
    assert set(TABLE) == set(itertools.product(RESTART_TYPES, list(Exit)))


@pytest.mark.parametrize(
    ("restart", "exit", "expected"),
    [
        ("temporary", Exit.NORMAL, Action.STOP),
        ("temporary", Exit.CRASH, Action.STOP),
        ("transient", Exit.NORMAL, Action.STOP),
        ("permanent", Exit.NORMAL, Action.RESTART),
    ],
)
def test_rows_that_need_no_decider(restart: str, exit: Exit, expected: Action) -> None:
    # The decider is consulted only for a crash; intensity only for a restart.
    def intensity() -> bool:
        assert expected is Action.RESTART, "intensity consulted for a stop"
        return True

    assert decide(restart, exit, never, intensity) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("restart", ["transient", "permanent"])
@pytest.mark.parametrize(
    ("directive", "expected"),
    [("restart", Action.RESTART), ("stop", Action.STOP), ("escalate", Action.ESCALATE)],
)
def test_a_crash_asks_the_decider(restart: str, directive: str, expected: Action) -> None:
    assert decide(restart, Exit.CRASH, lambda: directive, lambda: True) is expected  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("restart", ["transient", "permanent"])
def test_a_restart_past_the_intensity_gives_up(restart: str) -> None:
    assert decide(restart, Exit.CRASH, lambda: "restart", lambda: False) is Action.GIVE_UP  # type: ignore[arg-type]


def test_a_stop_never_counts_against_the_intensity() -> None:
    assert decide("permanent", Exit.CRASH, lambda: "stop", never) is Action.STOP  # type: ignore[arg-type]
    assert decide("temporary", Exit.CRASH, never, never) is Action.STOP  # type: ignore[arg-type]


def test_a_decider_answering_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="'restart', 'stop' or 'escalate'"):
        decide("permanent", Exit.CRASH, lambda: "resume", lambda: True)  # type: ignore[arg-type,return-value]


@given(
    restarts=st.lists(st.sampled_from(RESTART_TYPES), min_size=1, max_size=8),
    failed=st.integers(min_value=0, max_value=7),
    strategy=st.sampled_from([OneForOne(), OneForAll(), RestForOne()]),
)
def test_plan_restart_splits_temporary_siblings_out(
    restarts: list[str], failed: int, strategy: OneForOne
) -> None:
    children = list(range(len(restarts)))
    failed %= len(children)
    affected = strategy.affected(children, failed)
    stop, restart = plan_restart(affected, lambda c: restarts[c])  # type: ignore[arg-type,return-value]
    assert sorted(stop + restart) == sorted(affected)
    assert all(restarts[c] == "temporary" for c in stop)
    assert all(restarts[c] != "temporary" for c in restart)
    assert stop == sorted(stop) and restart == sorted(restart)  # start order kept
    if isinstance(strategy, OneForAll):
        assert sorted(affected) == children
    elif isinstance(strategy, RestForOne):
        assert affected == children[failed:]
    else:
        assert affected == [failed]
