"""The admin API's answers: one query in, (HTTP status, JSON body) out.

The same function answers a request made to this node's endpoint and one
forwarded by another node's endpoint to this node's admin agent
(``?node=ID``, see ``_agent``): the endpoint that received the HTTP request
checked the token; the cluster link is already authenticated by the cookie.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import ActorKilled, TrouperError
from ..actors import message
from ..runtime import fail_actor, restart_actor
from ._dashview import class_totals
from ._snapshot import DeadLetterLog, TreeLimits, actor_detail, cluster, node_info, tree

if TYPE_CHECKING:
    from ..runtime import Node

log = logging.getLogger("trouper.admin")

ACTIONS = ("stop", "kill", "restart")
#: The actors that answer admin queries: no action may target them.
SELF = ("AdminActor", "AdminAgent")


@message
class AdminQuery(msgspec.Struct, frozen=True):
    """A read or an action, as the admin agent of another node receives it."""

    # "node", "tree", "actor", "cluster", "deadletters", "metrics", "rates" or "action"
    kind: str
    path: str = "/"
    action: str = ""
    depth: int = 16
    children: int = 100
    max_actors: int = 2000


@message
class AdminAnswer(msgspec.Struct, frozen=True):
    status: int
    body: bytes


class AdminState:
    """What outlives a restart of the admin agent and of the endpoint: the
    endpoint's address and the recent dead letters."""

    def __init__(self, node_id: str, dead_letters: int) -> None:
        self.node_id = node_id
        self.url: str | None = None
        self.port = 0
        self.letters = DeadLetterLog(dead_letters)
        self.stopping = False
        #: Why the server could not start (for ``start_admin``'s error).
        self.error: str | None = None


def error(status: int, code: str, message: str) -> AdminAnswer:
    return encode(status, {"error": code, "message": message})


def encode(status: int, body: Any) -> AdminAnswer:
    return AdminAnswer(status, json.dumps(body).encode() + b"\n")


async def answer(node: Node, state: AdminState, query: AdminQuery) -> AdminAnswer:
    """Answer ``query`` about this node."""
    kind = query.kind
    if kind == "node":
        # The agent outlives a closed endpoint: report its URL only while it serves.
        serving = node.kernel.cell_at("/system/admin") is not None
        return encode(200, node_info(node, state.url if serving else None))
    if kind == "cluster":
        return encode(200, cluster(node))
    if kind == "deadletters":
        return encode(200, state.letters.snapshot(node))
    if kind == "metrics":
        from ._metrics import metrics_text

        return AdminAnswer(200, metrics_text(node)[0])
    if kind == "rates":  # the dashboard's messages per second
        return encode(200, class_totals(node))
    path = query.path or "/"
    if kind == "tree":
        limits = TreeLimits(query.depth, query.children, query.max_actors)
        root = node.kernel.cell_at(path) if path != "/" else None
        if path == "/":
            roots = [c for c in (node.kernel.cell_at(p) for p in ("/user", "/system")) if c]
            body = {"node": node.id, "roots": [tree(c, limits) for c in roots]}
            return encode(200, body)
        if root is None:
            return error(404, "actor-not-found", f"no live actor at {path} on node {node.id}")
        return encode(200, {"node": node.id, "roots": [tree(root, limits)]})
    cell = node.kernel.cell_at(path)
    if cell is None:
        return error(404, "actor-not-found", f"no live actor at {path} on node {node.id}")
    if kind == "actor":
        return encode(200, actor_detail(cell))
    if kind != "action" or query.action not in ACTIONS:
        return error(400, "bad-request", f"unknown admin query {kind!r} {query.action!r}")
    if cell.parent is None or path in ("/user", "/system"):
        return error(403, "forbidden", f"{path} is a guardian: it stops with the node")
    if cell.actor_class.__name__ in SELF and cell.parent.ref.path == "/system":
        # It would wait on itself (a forwarded action runs in the agent's
        # handler, a local one in the endpoint's request).
        return error(403, "forbidden", f"{path} is the admin endpoint itself")
    try:
        if query.action == "stop":
            await node.stop(cell.ref)
        elif query.action == "kill":
            fail_actor(cell, ActorKilled(f"{path} was killed through the admin API"))
        else:
            await restart_actor(cell)
    except TrouperError as exc:
        return error(409, exc.error_code, f"{query.action} {path}: {exc}")
    log.warning("admin: %s %s on node %s", query.action, path, node.id)
    done: dict[str, Any] = {"node": node.id, "path": path, "action": query.action, "ok": True}
    return encode(202 if query.action == "kill" else 200, done)


async def answer_anywhere(
    node: Node, state: AdminState, target: str | None, query: AdminQuery, timeout: float
) -> AdminAnswer:
    """Answer for ``target`` (a node id; None: this node), asking the admin
    agent of that node (every clustered node runs one) through the cluster
    when it is another one."""
    if target is None or target == node.id:
        return await answer(node, state, query)
    from ._config import admin_name

    if node.remote is None:
        return error(404, "node-not-found", f"node {node.id} is not in a cluster")
    ref = node.registry.get(admin_name(target))
    if ref is None:
        return error(404, "node-not-found", f"no node {target!r} is known in the cluster")
    try:
        reply = await ref.ask(query, timeout=timeout)
    except TrouperError as exc:
        return error(502, exc.error_code, f"node {target}: {exc}")
    if not isinstance(reply, AdminAnswer):
        return error(502, "bad-reply", f"node {target} answered {type(reply).__name__}")
    return reply
