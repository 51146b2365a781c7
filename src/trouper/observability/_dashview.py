"""The live dashboard's pure logic: what a viewer asked for, how often it
gets a frame, and messages per second. No I/O; time is passed in.

A viewer (one WebSocket) tells the server which actors it has expanded, as
``{"expand": [[node, path], ...]}``; an actor not expanded shows its children
aggregated by class (count, states, restarts, mailbox depths), so a node with
10,000 actors costs a frame of a few listings, never 10,000 rows. It also
acknowledges each frame it has drawn (``{"ack": seq}``): at most ``WINDOW``
frames are ever unacknowledged, so a viewer that stops reading holds at most
that many frames of the server's memory and socket buffers (the ASGI server
shields its socket writes: a write the peer never reads would never end).
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping
from typing import Any, Final

import attrs

#: Frames per second one viewer gets, at most.
FPS: Final = 4.0
#: Frames sent to a viewer and not acknowledged yet, at most.
WINDOW: Final = 2
#: Frames a viewer may miss in a row (its window closed); then it is dropped
#: as too slow (2 s at 4 frames a second).
STALL: Final = 8
#: The largest frame: past it, the viewer's expanded listings are left out
#: (the last expanded first) and it is told to collapse some.
MAX_FRAME: Final = 256 * 1024
#: Actors one viewer may have expanded (further ones are ignored, with an error).
MAX_EXPANDED: Final = 32
#: Children listed one by one under an actor (the rest are aggregated by class).
CHILDREN: Final = 100
#: Nodes whose trees a frame holds (the other members are listed without).
MAX_NODES: Final = 16
#: Dead letters a frame holds (the most recent of all nodes).
DEAD_LETTERS: Final = 50
#: The largest message a viewer may send; larger closes the socket (1009).
MAX_CLIENT_MESSAGE: Final = 64 * 1024
#: The longest actor path a viewer may expand.
MAX_PATH: Final = 512

NodePath = tuple[str, str]


class Throttle:
    """At most one frame per ``interval`` seconds: ``wait(now)`` says how
    long until the next one may go, ``sent(now)`` records one."""

    def __init__(self, fps: float = FPS) -> None:
        if not fps > 0 or math.isinf(fps):
            raise ValueError(f"fps must be a positive finite number, not {fps!r}")
        self.interval = 1.0 / fps
        self.next_at = -math.inf

    def wait(self, now: float) -> float:
        return max(0.0, self.next_at - now)

    def sent(self, now: float) -> None:
        self.next_at = now + self.interval


@attrs.frozen
class Expansion:
    """A viewer's request, once checked: the accepted (node, path) pairs
    (None: the message was unusable, keep the previous ones) and what was
    wrong (shown to that viewer only)."""

    paths: tuple[NodePath, ...] | None = None
    error: str | None = None
    ack: int | None = None


def parse_request(text: str | bytes) -> Expansion:
    """Check a viewer's ``{"expand": [[node, path], ...]}``."""
    if len(text) > MAX_CLIENT_MESSAGE:
        return Expansion(error=f"a message is at most {MAX_CLIENT_MESSAGE} bytes")
    try:
        body = json.loads(text)
    except ValueError as exc:
        return Expansion(error=f"not JSON: {exc}")
    if not isinstance(body, dict):
        return Expansion(error='expected {"expand": [[node, path], ...]} or {"ack": seq}')
    ack = body.get("ack")
    if not isinstance(ack, int) or isinstance(ack, bool) or ack < 0:
        ack = None
    if "expand" not in body:
        return Expansion(ack=ack, error=None if ack is not None else "expected expand or ack")
    if not isinstance(body["expand"], list):
        return Expansion(ack=ack, error='expected {"expand": [[node, path], ...]}')
    paths: list[NodePath] = []
    problems: list[str] = []
    for item in body["expand"]:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(part, str) for part in item)
            or not item[1].startswith("/")
            or len(item[1]) > MAX_PATH
            or not item[0]
        ):
            problems.append(f"{json.dumps(item)[:80]} is not [node, /path]")
            continue
        pair = (item[0], "/" + item[1].strip("/"))
        if pair not in paths:
            paths.append(pair)
    if len(paths) > MAX_EXPANDED:
        problems.append(f"at most {MAX_EXPANDED} actors may be expanded; the rest are ignored")
        paths = paths[:MAX_EXPANDED]
    return Expansion(tuple(paths), "; ".join(problems[:3]) or None, ack)


class RateMeter:
    """Per-second rates of monotonic totals between two samples. It keeps
    only the keys of the latest sample, so it is never larger than a frame."""

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}
        self._at: float | None = None

    def update(self, totals: Mapping[Hashable, int], now: float) -> dict[Hashable, float]:
        elapsed = 0.0 if self._at is None else now - self._at
        out: dict[Hashable, float] = {}
        for key, total in totals.items():
            before = self._last.get(key)
            if before is None or elapsed <= 0:
                out[key] = 0.0
            else:
                out[key] = max(0, total - before) / elapsed  # a new incarnation: 0
        self._last = dict(totals)
        self._at = now
        return out


def add_rates(
    meters: tuple[RateMeter, RateMeter],
    view: dict[str, Any],
    classes: Mapping[str, int],
    times: tuple[float, float],
) -> None:
    """Messages per second, written into a node's view: ``rate`` on each
    actor and class group listed, ``classes`` (per actor class, every actor
    of it) and ``rate`` (the node's total). The listings and the class
    totals each have their meter and the time they were read at."""
    listed: dict[Hashable, list[dict[str, Any]]] = {}

    def walk(entry: dict[str, Any]) -> None:
        listed.setdefault(("actor", entry["path"], entry["uid"]), []).append(entry)
        for child in entry.get("children", ()):
            walk(child)
        for group in entry.get("more", ()):
            listed.setdefault(("group", entry["path"], group["class"]), []).append(group)

    for root in view.get("roots", ()):
        walk(root)
    for listing in view.get("expanded", {}).values():
        walk(listing)
    totals: dict[Hashable, int] = {key: int(e[0].get("handled", 0)) for key, e in listed.items()}
    rates = meters[0].update(totals, times[0])
    for key, entries in listed.items():
        for entry in entries:
            entry["rate"] = rates[key]
    by_class = meters[1].update({name: int(total) for name, total in classes.items()}, times[1])
    view["classes"] = {str(name): rate for name, rate in by_class.items()}
    view["rate"] = sum(view["classes"].values())


def links(views: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    """The connected pairs, from each node's list of members: a line for
    each pair that at least one side reports connected."""
    pairs: set[tuple[str, str]] = set()
    for node, members in views.items():
        for member in members:
            other = member.get("node")
            if isinstance(other, str) and other != node and member.get("connected"):
                a, b = sorted((node, other))
                pairs.add((a, b))
    return [list(pair) for pair in sorted(pairs)]


def merge_letters(by_node: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The most recent dead letters of all nodes, newest first."""
    merged = [dict(letter, node=node) for node, letters in by_node.items() for letter in letters]
    merged.sort(key=lambda letter: -float(letter.get("time", 0.0)))
    return merged[:DEAD_LETTERS]


def class_totals(node: Any) -> dict[str, Any]:
    """Messages handled so far per actor class (the runtime's plain
    counters; empty with ``metrics=False``): the dashboard's ``rates``."""
    counters = node.kernel.counters
    return {"node": node.id, "classes": {c.name: c.handled for c in counters.classes()}}
