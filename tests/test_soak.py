"""The soak test of ``make soak``, cut to 20 seconds, and its checker on a made-up run.

``test_soak_20s`` runs the same driver as ``make soak`` (``--short``): three node
processes, a seeded chaos of ``kill -9`` and restarts, slow actors under bursts of
remote tells, steady and concurrent asks. It fails with the readable summary, which
says which check failed, on which node, when, and what happened.

``test_checker_catches_each_violation`` feeds the checker hand-written journals with
one of each fault, so a soak run that passes is known to have looked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.soak._check import check  # noqa: E402
from benchmarks.soak._config import Config  # noqa: E402
from benchmarks.soak._driver import Life, Outcome, run  # noqa: E402
from benchmarks.soak._report import figures, summary  # noqa: E402


async def test_soak_20s(tmp_path: Path) -> None:
    config = Config.short(workdir=tmp_path)
    with trio.fail_after(config.deadline + 15):  # the driver has its own, inside this one
        outcome = await run(config)
    verdict = check(outcome)
    line = figures(verdict)
    assert line["kills"] + line["graceful_restarts"] >= 1, summary(verdict)
    assert line["asks_answered"] > 100 and line["tells_sent"] > 100, summary(verdict)
    if not verdict.ok:
        pytest.fail(summary(verdict), pytrace=False)


def _journal(path: Path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_checker_catches_each_violation(tmp_path: Path) -> None:
    """n2#1 is killed at 150 and comes back as n2#2; everything else is made up."""
    lives = [
        Life("n1", 1, 99.0, 1, 11, 100.0, 200.0, "stop", 0, 200.2),
        Life("n2", 1, 99.0, 2, 21, 100.0, 150.0, "kill", -9, 150.0),
        Life("n2", 2, 152.0, 3, 22, 153.0, 200.0, "stop", 0, 200.2),
        Life("n3", 1, 99.0, 4, 31, 100.0, 200.0, "stop", 0, 200.2),
    ]
    ask = "n1.1.ask.n3.0"
    tell = "n3.1.tell.n1.0"
    _journal(
        tmp_path / "n1#1.journal",
        "I 100.0 n1 11 1",
        "D 151.0 n2 21 no heartbeat for 3.0s",  # after the kill: expected
        "D 120.0 n3 31 no heartbeat for 1.4s (phi)",  # n3 was alive: a false down
        f"A 101.0 n3 31 {ask} 1",
        f"A 102.0 n3 31 {ask} 2",  # never arrived: lost
        f"A 103.0 n3 31 {ask} 3",  # arrived twice
        f"A 190.0 n3 31 {ask} 6",  # 88 s without an answer before it: a stall
        f"O 130.0 {ask} 4 3.5",  # an ask that outlived its timeout
        "R 140.0 slow n3.1.tell.n1.0 1",
        "R 140.1 slow n3.1.tell.n1.0 3",  # #2 of the burst is missing
        "R 140.2 slow n3.1.tell.n1.0 4",
        "R 141.0 slow n3.1.tell.n1.0 6",
        "R 141.1 slow n3.1.tell.n1.0 5",  # out of order
        "R 141.1 recv n2.1.ask.n1",  # torn: too few fields
        "R 142.0 recv",  # torn: no newline follows
    )
    (tmp_path / "n1#1.journal").write_text((tmp_path / "n1#1.journal").read_text()[:-1])
    _journal(
        tmp_path / "n3#1.journal",
        "I 100.0 n3 31 4",
        f"R 101.0 recv {ask} 1",
        f"R 103.0 recv {ask} 3",
        f"R 103.1 recv {ask} 3",
        f"R 190.0 recv {ask} 6",
        f"B 139.0 n1 {tell} 1 3",
        f"F 140.5 n1 11 {tell} 1 4",
    )
    rss = [(100.0 + i, 50_000 + (i * 1024 if i > 40 else 0)) for i in range(100)]
    config = Config(duration=100.0, warmup=10.0, workdir=tmp_path, rss_growth_mib=16.0)
    outcome = Outcome(config, tmp_path, 100.0, lives, rss, [], 0.1, 200.0, ("0", "0"))
    verdict = check(outcome)
    text = summary(verdict)
    failed = {v.check for v in verdict.violations}
    assert failed == {"false-down", "exactly-once", "order", "progress", "hang", "memory"}, text
    assert "n1#1 declared n3 (incarnation 31) down at +20.0s" in text, text
    fig = verdict.figures
    assert (fig["false_downs"], fig["downs_expected"]) == (1, 1), fig
    assert (fig["lost"], fig["duplicated"], fig["out_of_order"]) == (2, 1, 1), fig
    assert fig["tells_acked"] == 3 and fig["torn_lines"] == 2, fig
    assert "n1.1.ask.n3.0: no answer from n3 for 87.0s" in text, text
    assert fig["rss"]["growth_mib"] > 16, fig
