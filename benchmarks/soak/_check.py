"""The verdict of a soak run: journals and the driver's record, checked against the rules.

- ``false-down``: a down declared for an incarnation that the driver had not killed or
  stopped at that moment. A down after a kill or a SIGTERM is expected and counted.
- ``exactly-once``: every answered ask, and every tell of a burst whose closing ask was
  answered, is in the journal of the incarnation that answered, once; nothing anywhere
  arrived twice.
- ``order``: from one sender loop (``ask``, ``tell``) to one actor, numbers arrive rising.
- ``progress``: a steady ask loop to a live node is never ``stall_bound`` s without an
  answer. The time its target was dead, and ``down_after + RECOVERY`` s after it came
  back, do not count; ``max_ask_gap_s`` is the longest gap that remains.
- ``hang``: no ask outlived its own timeout, and no bound of the driver passed.
- ``memory``: the seed node's RSS grew by at most ``rss_growth_mib`` after warm-up.
- ``shutdown``, ``crash``, ``membership``: found by the driver (see ``_driver``).
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ._config import NODES
from ._driver import Life, Outcome, Violation
from ._journal import Entries, read

CHECKS = (
    "false-down",
    "exactly-once",
    "order",
    "progress",
    "hang",
    "memory",
    "shutdown",
    "crash",
    "membership",
)
ENDINGS = {
    "kill": "killed (-9)",
    "term": "stopped (SIGTERM)",
    "stop": "stopped by the final SIGTERM",
    "crash": "exited",
}
#: Seconds after ``down_after`` that a restarted node gets to answer asks again: the old
#: incarnation is found down, the new one's names spread, the senders look them up.
RECOVERY = 2.0
ORDERED = ("ask", "tell")  # key kinds with one message in flight or sent in sequence


@dataclass(slots=True)
class Verdict:
    outcome: Outcome
    violations: list[Violation]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def failed(self, check: str) -> list[Violation]:
        return [v for v in self.violations if v.check == check]


@dataclass(slots=True)
class Run:
    """The outcome and the journals, indexed for the checks."""

    outcome: Outcome
    journals: dict[str, Entries]  # by life label
    lives: dict[str, Life]
    by_incarnation: dict[int, Life]
    #: (key, seq) -> where it arrived: [(life label, actor)]
    arrivals: dict[tuple[str, int], list[tuple[str, str]]]

    def rel(self, t: float) -> str:
        return f"{t - self.outcome.began:+.1f}s"

    def tells_to(self, node: str, start: float, end: float) -> str:
        """Tells accepted for ``slow-<node>`` between ``start`` and ``end``, by sender."""
        by: dict[str, int] = defaultdict(int)
        for label, entries in self.journals.items():
            for t, target, count in entries.bursts:
                if target == node and start <= t <= end:
                    by[self.lives[label].node] += count
        detail = ", ".join(f"{sender} {count}" for sender, count in sorted(by.items()))
        return f"tells to slow-{node} {sum(by.values())}" + (f" ({detail})" if by else "")

    def max_lag(self, label: str, start: float, end: float) -> float:
        lags = self.journals[label].lags if label in self.journals else []
        return max((lag for t, lag in lags if start <= t <= end + lag), default=0.0)


def load(outcome: Outcome) -> Run:
    lives = {life.label: life for life in outcome.lives}
    journals = {}
    for label in lives:
        path = outcome.workdir / f"{label}.journal"
        if path.exists():
            journals[label] = read(path)
    by_incarnation = {life.incarnation: life for life in outcome.lives if life.incarnation}
    for label, entries in journals.items():  # a process killed before the driver read it
        if entries.incarnation and entries.incarnation not in by_incarnation:
            by_incarnation[entries.incarnation] = lives[label]
    arrivals: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
    for label, entries in journals.items():
        for (actor, key), seqs in entries.arrivals.items():
            for seq in seqs:
                arrivals[(key, seq)].append((label, actor))
    return Run(outcome, journals, lives, by_incarnation, arrivals)


def false_downs(run: Run, figures: dict[str, Any]) -> list[Violation]:
    found, expected = [], 0
    window = run.outcome.config.workload.down_after + 1.0
    for label, entries in run.journals.items():
        down_by = run.lives[label].node
        for down in entries.downs:
            target = run.by_incarnation.get(down.incarnation)
            said = f"{label} declared {down.node} (incarnation {down.incarnation}) down"
            if target is None:
                what = f"{said}: no process of this run had that incarnation ({down.reason})"
                found.append(Violation("false-down", down.node, down.t, what))
                continue
            if target.ended is not None and target.ended <= down.t:
                expected += 1
                continue
            fate = "it was never stopped"
            if target.ended is not None:
                fate = (
                    f"it was {ENDINGS[target.end_kind or 'crash']} only at {run.rel(target.ended)}"
                )
            lags = ", ".join(
                f"{who} {run.max_lag(who, down.t - window, down.t):.2f}s"
                for who in (target.label, label)
            )
            tells = "; ".join(
                run.tells_to(node, down.t - window, down.t) for node in (target.node, down_by)
            )
            what = (
                f"{said} at {run.rel(down.t)} ({down.reason!r}) while {target.label} was "
                f"alive: {fate}. In the {window:g}s before: worst event-loop lag {lags}; {tells}"
            )
            found.append(Violation("false-down", target.node, down.t, what))
    figures["downs_expected"] = expected
    figures["false_downs"] = len(found)
    return found


def exactly_once(run: Run, figures: dict[str, Any]) -> list[Violation]:
    found = []
    lost = misplaced = tells_acked = asks_answered = 0
    for entries in run.journals.values():
        for ack in entries.acks:
            target = run.by_incarnation.get(ack.incarnation)
            actor = "slow" if ack.key.split(".")[2] == "tell" else "recv"
            if ack.first == ack.last:
                asks_answered += 1
            else:
                tells_acked += ack.last - ack.first
            missing, elsewhere = [], []
            for seq in range(ack.first, ack.last + 1):
                places = run.arrivals.get((ack.key, seq), [])
                if not places:
                    missing.append(seq)
                elif target is None or (target.label, actor) not in places:
                    elsewhere.append(seq)
            lost += len(missing)
            misplaced += len(elsewhere)
            where = f"{target.label if target else '?'} ({ack.incarnation})"
            what = f"{ack.key} {_span(ack.first, ack.last)}, answered by {where}"
            if missing:
                seqs = _seqs(missing)
                what_lost = f"{what} at {run.rel(ack.t)}: {len(missing)} never arrived ({seqs})"
                found.append(Violation("exactly-once", ack.target, ack.t, what_lost))
            if elsewhere:
                seqs = _seqs(elsewhere)
                what_else = f"{what}: {len(elsewhere)} arrived elsewhere only ({seqs})"
                found.append(Violation("exactly-once", ack.target, ack.t, what_else))
    duplicated = 0
    for (key, seq), places in run.arrivals.items():
        if len(places) > 1:
            duplicated += len(places) - 1
            node = run.lives[places[0][0]].node
            what = f"{key} #{seq} arrived {len(places)} times: {places}"
            found.append(Violation("exactly-once", node, None, what))
    figures.update(
        asks_answered=asks_answered,
        tells_acked=tells_acked,
        messages_arrived=sum(len(p) for p in run.arrivals.values()),
        lost=lost,
        misplaced=misplaced,
        duplicated=duplicated,
    )
    return found


def order(run: Run, figures: dict[str, Any]) -> list[Violation]:
    found = []
    for label, entries in run.journals.items():
        for (actor, key), seqs in entries.arrivals.items():
            if key.split(".")[2] not in ORDERED:
                continue
            for before, after in itertools.pairwise(seqs):
                if after < before:  # equal is a duplicate, reported as one
                    what = f"{key} at {label}'s {actor}: #{after} arrived after #{before}"
                    found.append(Violation("order", run.lives[label].node, None, what))
                    break
    figures["out_of_order"] = len(found)
    return found


def progress(run: Run, figures: dict[str, Any]) -> list[Violation]:
    config, found, worst = run.outcome.config, [], 0.0
    grace = config.workload.down_after + RECOVERY
    away = {
        node: [(start, stop + grace) for start, stop in spans]
        for node, spans in _outages(run.outcome).items()
    }
    for label, entries in run.journals.items():
        sender = run.lives[label]
        if sender.ready is None:
            continue  # it never started: the driver reported that already
        times: dict[str, list[float]] = defaultdict(list)
        for ack in entries.acks:
            if ack.key.split(".")[2] == "ask":
                times[ack.key].append(ack.t)
        peers = [node for node in NODES if node != sender.node]
        indexes = range(config.workload.ask_loops)
        loops = {f"{sender.node}.{sender.start}.ask.{p}.{i}" for p in peers for i in indexes}
        for key in sorted(loops | set(times)):
            target = key.split(".")[3]
            end = sender.ended if sender.ended is not None else run.outcome.finished
            points = [sender.ready, *sorted(times.get(key, [])), end]
            for a, b in itertools.pairwise(points):
                up = (b - a) - _covered(a, b, away[target])
                worst = max(worst, up)
                if up > config.stall_bound:
                    what = (
                        f"{key}: no answer from {target} for {b - a:.1f}s "
                        f"({run.rel(a)} to {run.rel(b)}), {up:.1f}s of it while {target} "
                        f"was up (and past a {grace:g}s grace after any restart of it)"
                    )
                    found.append(Violation("progress", target, a, what))
    figures["max_ask_gap_s"] = round(worst, 2)
    figures["stalls"] = len(found)
    return found


def _covered(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    """How much of ``[a, b]`` the (possibly overlapping) ``spans`` cover."""
    covered, reach = 0.0, a
    for start, stop in sorted(spans):
        low, high = max(start, reach), min(stop, b)
        if high > low:
            covered += high - low
        reach = max(reach, high)
    return covered


def _outages(outcome: Outcome) -> dict[str, list[tuple[float, float]]]:
    """For each node, the intervals in which no process of it was up and ready."""
    outages: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for node in NODES:
        lives = [life for life in outcome.lives if life.node == node]
        down_since = 0.0  # before its first process was ready
        for life in lives:
            if life.ready is None:
                continue
            outages[node].append((down_since, life.ready))
            down_since = life.ended if life.ended is not None else outcome.finished
            if life.end_kind == "stop":
                down_since = outcome.finished
        outages[node].append((down_since, float("inf")))
    return outages


def hangs(run: Run, figures: dict[str, Any]) -> list[Violation]:
    found = []
    for label, entries in run.journals.items():
        for t, key, seq, seconds in entries.overruns:
            what = f"{key} #{seq} was still pending after {seconds:.1f}s, past its own timeout"
            found.append(Violation("hang", run.lives[label].node, t, what))
    figures["overruns"] = len(found)
    return found


def memory(run: Run, figures: dict[str, Any]) -> list[Violation]:
    config, samples = run.outcome.config, run.outcome.rss
    warm_at = run.outcome.began + config.warmup_seconds
    warm = [kib for t, kib in samples if warm_at <= t <= warm_at + 5.0]
    late = [kib for _, kib in samples[-5:]]
    rss: dict[str, Any] = {"bound_mib": config.rss_growth_mib, "warmup_s": config.warmup_seconds}
    rss["samples_kib"] = [kib for _, kib in samples]
    figures["rss"] = rss
    if not warm or len(samples) < 10:
        what = f"only {len(samples)} RSS samples, none after a {config.warmup_seconds:g}s warm-up"
        return [Violation("memory", "n1", None, what)]
    rss["warm_kib"], rss["end_kib"] = int(statistics.median(warm)), int(statistics.median(late))
    growth = (rss["end_kib"] - rss["warm_kib"]) / 1024
    rss["growth_mib"] = round(growth, 2)
    if growth <= config.rss_growth_mib:
        return []
    what = (
        f"n1's RSS grew {growth:.1f} MiB ({rss['warm_kib']} KiB after warm-up, "
        f"{rss['end_kib']} KiB at the end), more than {config.rss_growth_mib:g} MiB"
    )
    return [Violation("memory", "n1", samples[-1][0], what)]


def _span(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}..#{last}"


def _seqs(seqs: list[int]) -> str:
    shown = ", ".join(f"#{s}" for s in seqs[:5])
    return shown + (f" and {len(seqs) - 5} more" if len(seqs) > 5 else "")


def check(outcome: Outcome) -> Verdict:
    run = load(outcome)
    figures: dict[str, Any] = {}
    found = list(outcome.violations)
    for rule in (false_downs, exactly_once, order, progress, hangs, memory):
        found += rule(run, figures)
    failures: dict[str, int] = defaultdict(int)
    for entries in run.journals.values():
        for error, count in entries.failures.items():
            failures[error] += count
    figures["send_failures"] = dict(sorted(failures.items()))
    figures["tells_sent"] = sum(c for e in run.journals.values() for _, _, c in e.bursts)
    figures["chaos"] = [
        [round(life.ended - outcome.began, 1), life.label, life.end_kind]
        for life in sorted(outcome.lives, key=lambda life: life.ended or 0.0)
        if life.ended is not None and life.end_kind != "stop"
    ]
    figures["torn_lines"] = sum(e.torn for e in run.journals.values())
    lags: dict[str, float] = {node: 0.0 for node in NODES}
    for label, entries in run.journals.items():
        node = run.lives[label].node
        lags[node] = max([lags[node], *(lag for _, lag in entries.lags)])
    figures["max_loop_lag_s"] = {node: round(lag, 3) for node, lag in lags.items()}
    return Verdict(outcome, found, figures)
