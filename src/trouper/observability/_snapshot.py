"""What the admin API reports, as plain JSON-ready dicts (no I/O).

Each function reads the node through the runtime's documented interface
(``Kernel``, ``Cell``, ``node.stats()``, ``node.members()``) at the moment
it is called. Sizes are bounded so that a node with 10,000 actors answers
with a small document: a tree lists at most ``children`` children per actor
(the rest are aggregated by class into ``more``), stops descending below
``depth`` levels, and stops listing actors after ``max_actors`` entries (what
is left is aggregated, never dropped from the counts).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ..runtime import child_cells, state_name
from ._config import admin_name
from ._remote_metrics import tcp_rtt

if TYPE_CHECKING:
    from ..actors import DeadLetter
    from ..runtime import Cell, Node

#: Hard caps on what one request may ask for (query parameters are clamped).
MAX_DEPTH = 64
MAX_CHILDREN = 1000
MAX_ACTORS = 5000


@attrs.frozen
class TreeLimits:
    """How much of a tree one answer holds (see the module docstring)."""

    depth: int = 16
    children: int = 100
    max_actors: int = 2000

    def clamped(self) -> TreeLimits:
        return TreeLimits(
            depth=max(0, min(self.depth, MAX_DEPTH)),
            children=max(0, min(self.children, MAX_CHILDREN)),
            max_actors=max(1, min(self.max_actors, MAX_ACTORS)),
        )


def node_info(node: Node, admin_url: str | None) -> dict[str, Any]:
    stats = node.stats()
    return {
        "node": node.id,
        "addresses": list(node.addresses),
        "admin": admin_url,
        "remote": node.remote is not None,
        "stats": attrs.asdict(stats),
        "time": time.time(),
    }


def actor_entry(cell: Cell) -> dict[str, Any]:
    """One actor, without its children."""
    return {
        "path": cell.ref.path,
        "uid": cell.ref.uid,
        "name": cell.name,
        "class": _class_name(cell),
        "state": state_name(cell),
        "restarts": cell.restarts,
        "mailbox_depth": cell.mailbox_depth,
        "handled": cell.handled,
    }


def actor_detail(cell: Cell) -> dict[str, Any]:
    """One actor and a summary of its children (``/api/actors/{path}``)."""
    entry = actor_entry(cell)
    children = child_cells(cell)
    entry["node"] = cell.node.id
    entry["children_total"] = len(children)
    entry["children"] = [c.ref.path for c in children[:MAX_CHILDREN]]
    entry["children_by_class"] = dict(Counter(_class_name(c) for c in children))
    return entry


def tree(root: Cell, limits: TreeLimits) -> dict[str, Any]:
    """The supervision tree under ``root`` (see the module docstring)."""
    limits = limits.clamped()
    budget = [limits.max_actors]

    def walk(cell: Cell, level: int) -> dict[str, Any]:
        budget[0] -= 1
        entry = actor_entry(cell)
        children = child_cells(cell)
        entry["children_total"] = len(children)
        shown: list[Cell] = []
        if level < limits.depth:
            room = max(0, min(limits.children, budget[0]))
            shown = children[:room]
        entry["children"] = [walk(c, level + 1) for c in shown]
        rest = children[len(shown) :]
        entry["more"] = aggregate(rest) if rest else []
        return entry

    return walk(root, 0)


def aggregate(cells: list[Cell]) -> list[dict[str, Any]]:
    """Actors summed up by class: count, states, restarts, mailbox depths."""
    groups: dict[str, dict[str, Any]] = {}
    for cell in cells:
        name = _class_name(cell)
        group = groups.get(name)
        if group is None:
            group = groups[name] = {
                "class": name,
                "count": 0,
                "states": {},
                "restarts": 0,
                "mailbox_depth": 0,
                "mailbox_depth_max": 0,
                "handled": 0,
            }
        depth = cell.mailbox_depth
        group["count"] += 1
        states = group["states"]
        state = state_name(cell)
        states[state] = states.get(state, 0) + 1
        group["restarts"] += cell.restarts
        group["handled"] += cell.handled
        group["mailbox_depth"] += depth
        group["mailbox_depth_max"] = max(group["mailbox_depth_max"], depth)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["class"]))


def cluster(node: Node) -> dict[str, Any]:
    """Every member this node knows: status, phi and round-trip time."""
    health = _peer_health(node)
    members = []
    for member in node.members():
        phi, rtt, connected = health.get(member.node_id, (None, None, None))
        if member.node_id == node.id:
            phi, rtt, connected = 0.0, 0.0, True
        members.append(
            {
                "node": member.node_id,
                "incarnation": member.incarnation,
                "addresses": list(member.addresses),
                "status": member.status,
                "phi": phi,
                "rtt_seconds": rtt,
                "connected": connected,
                # Whether its admin agent is known here: ?node= can reach it.
                "admin": node.registry.get(admin_name(member.node_id)) is not None,
            }
        )
    return {"node": node.id, "members": members}


def _peer_health(node: Node) -> dict[str, tuple[float | None, float | None, bool | None]]:
    """phi (the failure detector's suspicion) and RTT (the kernel's TCP
    estimate, as the metrics report it) per peer."""
    remote: Any = node.remote
    if remote is None:
        return {}
    out: dict[str, tuple[float | None, float | None, bool | None]] = {}
    peers: dict[str, Any] = getattr(remote, "peers", {})
    now = trio.current_time()
    for node_id, peer in peers.items():
        conn = peer.conn
        rtt = None if conn is None else tcp_rtt(conn.sock)
        out[node_id] = (_finite(peer.detector.phi(now)), rtt, conn is not None)
    return out


def _finite(value: float | None) -> float | None:
    # JSON has no infinity: a peer never heard from has an infinite phi.
    if value is None:
        return None
    value = float(value)
    return value if value < 1e300 else 1e300


def _class_name(cell: Cell) -> str:
    cls = cell.actor_class
    return f"{cls.__module__}.{cls.__qualname__}"


@attrs.frozen
class DeadLetterRecord:
    time: float
    recipient: str
    sender: str | None
    message_type: str
    reason: str


class DeadLetterLog:
    """The most recent dead letters of a node, at most ``size`` of them."""

    def __init__(self, size: int = 100) -> None:
        self.recent: deque[DeadLetterRecord] = deque(maxlen=size)
        self.seen = 0

    def add(self, letter: DeadLetter) -> None:
        self.seen += 1
        self.recent.append(
            DeadLetterRecord(
                time=time.time(),
                recipient=str(getattr(letter.recipient, "path", letter.recipient)),
                sender=None if letter.sender is None else str(letter.sender),
                message_type=type(letter.message).__qualname__,
                reason=letter.reason,
            )
        )

    def snapshot(self, node: Node) -> dict[str, Any]:
        return {
            "node": node.id,
            "count": node.dead_letters.count,
            "recent": [attrs.asdict(r) for r in reversed(self.recent)],
        }
