"""Append-only journals: what each node process did and saw, kept through a ``kill -9``.

Every record is one line written by a single ``os.write`` on an ``O_APPEND`` file. Once
the call returns the kernel holds the line, so a process killed right after it still
leaves it for the checker; that is why a receiver writes *before* it replies and a
sender only *after* the reply. A last line cut short has no newline and is ignored.

Records (``t`` is ``time.time()``; a key names one sender loop, see ``_workload``):

    I t node incarnation pid          this process, once its node is up
    R t actor key seq                 a message reached a local actor (before any reply)
    A t target incarnation key seq    an ask to ``recv-<target>`` was answered
    F t target incarnation key first last
                                      the ask ``last`` closing a burst of tells
                                      ``first..last-1`` to ``slow-<target>`` was answered
    B t target key first count        a burst's tells were all accepted by ``tell``
    X t key seq error                 a send failed (timeout, node down...)
    O t key seq seconds               an ask outlived its own timeout: a hang
    D t node incarnation reason       this node declared that incarnation down
    L t seconds                       the event loop ran this late behind a timer

The runtime's wording of a down declaration is parsed in one place, ``parse_down``.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: How the runtime logs a down declaration, on the logger ``trouper.remote``:
#: ``log.warning("node %s (%s) is down: %s", node_id, incarnation, reason)``.
DOWN_MESSAGE = re.compile(r"node (?P<node>\S+) \((?P<incarnation>\d+)\) is down: (?P<reason>.*)")
#: An event-loop lag (``L`` record) is journaled from this many seconds late.
LAG_REPORTED = 0.05
#: Listening on the parent of ``trouper.remote`` keeps working if the rewrite moves it.
DOWN_LOGGER = "trouper"


def parse_down(message: str) -> tuple[str, int, str] | None:
    """``(node, incarnation, reason)`` if ``message`` declares a node down, else None."""
    match = DOWN_MESSAGE.search(message)
    if match is None:
        return None
    return match["node"], int(match["incarnation"]), match["reason"]


class Journal:
    """The writing side, one per node process."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _write(self, *fields: object) -> None:
        line = " ".join(str(f) for f in (fields[0], f"{time.time():.3f}", *fields[1:]))
        os.write(self.fd, (line + "\n").encode())

    def identity(self, node: str, incarnation: int, pid: int) -> None:
        self._write("I", node, incarnation, pid)

    def arrived(self, actor: str, key: str, seq: int) -> None:
        self._write("R", actor, key, seq)

    def answered(self, target: str, incarnation: int, key: str, seq: int) -> None:
        self._write("A", target, incarnation, key, seq)

    def flushed(self, target: str, incarnation: int, key: str, first: int, last: int) -> None:
        self._write("F", target, incarnation, key, first, last)

    def burst(self, target: str, key: str, first: int, count: int) -> None:
        self._write("B", target, key, first, count)

    def failed(self, key: str, seq: int, error: str) -> None:
        self._write("X", key, seq, error)

    def overran(self, key: str, seq: int, seconds: float) -> None:
        self._write("O", key, seq, f"{seconds:.3f}")

    def down(self, node: str, incarnation: int, reason: str) -> None:
        self._write("D", node, incarnation, reason)

    def lag(self, seconds: float) -> None:
        self._write("L", f"{seconds:.3f}")

    def close(self) -> None:
        os.close(self.fd)


class DownRecorder(logging.Handler):
    """Journals every down declaration this process's runtime logs."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(logging.DEBUG)
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        parsed = parse_down(record.getMessage())
        if parsed is not None:
            self.journal.down(*parsed)


@dataclass(slots=True)
class Down:
    t: float
    node: str
    incarnation: int
    reason: str


@dataclass(slots=True)
class Ack:
    t: float
    target: str
    incarnation: int
    key: str
    first: int  # == last for a single ask
    last: int


@dataclass(slots=True)
class Entries:
    """One journal, read back."""

    path: Path
    node: str = ""
    incarnation: int = 0
    pid: int = 0
    #: (actor, key) -> seqs in arrival order
    arrivals: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    #: answered asks and bursts, in the order they were answered
    acks: list[Ack] = field(default_factory=list)
    #: (t, target, count): tells accepted by ``tell`` in one burst
    bursts: list[tuple[float, str, int]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    overruns: list[tuple[float, str, int, float]] = field(default_factory=list)
    downs: list[Down] = field(default_factory=list)
    lags: list[tuple[float, float]] = field(default_factory=list)
    torn: int = 0  # lines without a newline or unreadable


def read(path: Path) -> Entries:
    """Parse one journal; the checker makes sense of it."""
    entries = Entries(path)
    text = path.read_text(errors="replace")
    lines = text.split("\n")
    entries.torn = int(bool(lines[-1]))  # what follows the last newline is a torn write
    for line in lines[:-1]:
        kind, t, *rest = line.split(" ", 2 if line.startswith("D ") else -1)
        try:
            _parse(entries, kind, float(t), rest)
        except (ValueError, IndexError):
            entries.torn += 1
    return entries


def _parse(entries: Entries, kind: str, t: float, rest: list[str]) -> None:
    if kind == "R":
        entries.arrivals[(rest[0], rest[1])].append(int(rest[2]))
    elif kind == "A":
        seq = int(rest[3])
        entries.acks.append(Ack(t, rest[0], int(rest[1]), rest[2], seq, seq))
    elif kind == "F":
        entries.acks.append(Ack(t, rest[0], int(rest[1]), rest[2], int(rest[3]), int(rest[4])))
    elif kind == "B":
        entries.bursts.append((t, rest[0], int(rest[3])))
    elif kind == "X":
        entries.failures[rest[2]] += 1
    elif kind == "O":
        entries.overruns.append((t, rest[0], int(rest[1]), float(rest[2])))
    elif kind == "D":
        node, incarnation, reason = rest[0].split(" ", 2)
        entries.downs.append(Down(t, node, int(incarnation), reason))
    elif kind == "L":
        entries.lags.append((t, float(rest[0])))
    elif kind == "I":
        entries.node, entries.incarnation, entries.pid = rest[0], int(rest[1]), int(rest[2])
    else:
        raise ValueError(kind)
