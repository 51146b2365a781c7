"""The admin agent (``/system/observer``): every clustered node answers
admin queries, whether or not it serves HTTP.

Issue 12 asks that any node's admin endpoint answer for the whole cluster
(``/api/tree?node=ID``) through the cluster, not through a second HTTP
server. So the part of the admin endpoint that other nodes need, the
``AdminQuery`` answers and the recent dead letters those answers show, is
this small system actor, started by ``open_node`` for every node with a
remote layer (and for every node with an admin endpoint, whose HTTP actor
reads the same ``AdminState``). It registers under ``trouper:admin:<node
id>``, a cluster-wide name; it has no socket of its own.

Trust: a query that arrives here came over a link that passed the cookie
handshake, which is the cluster's trust boundary (a member can already stop
or spawn actors on this node); the endpoint that received the HTTP request
checked the admin token before forwarding an action.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ..actors import Actor, handler
from ._api import AdminAnswer, AdminQuery, AdminState, answer
from ._config import admin_name

if TYPE_CHECKING:
    from ..runtime import Node

SEGMENT = "observer"
#: How many recent dead letters a node without an admin endpoint keeps.
DEAD_LETTERS = 100


class AdminAgent(Actor):
    """Answers ``AdminQuery`` for this node and keeps its recent dead letters."""

    def __init__(self, state: AdminState) -> None:
        self.state = state

    async def on_start(self) -> None:
        self.ctx.start_soon(self._collect_dead_letters)
        self.ctx.node.registry.register(admin_name(self.ctx.node.id), self.ctx.self_ref)

    async def on_stop(self) -> None:
        self.ctx.node.registry.unregister(admin_name(self.ctx.node.id))

    @handler
    async def _query(self, msg: AdminQuery) -> AdminAnswer:
        return await answer(self.ctx.node, self.state, msg)

    async def _collect_dead_letters(self) -> None:
        letters = self.state.letters
        async with self.ctx.node.dead_letters.subscribe(buffer=letters.recent.maxlen or 100) as sub:
            async for letter in sub:
                letters.add(letter)


# The state outlives the agent's restarts; kept per node, not on the Node
# (the runtime knows nothing of observability).
_STATES: weakref.WeakKeyDictionary[Node, AdminState] = weakref.WeakKeyDictionary()


def agent_state(node: Node) -> AdminState | None:
    """The ``AdminState`` of ``node``'s running agent, if it has one."""
    if node.kernel.cell_at(f"/system/{SEGMENT}") is None:
        return None
    return _STATES.get(node)


async def start_agent(node: Node, dead_letters: int = DEAD_LETTERS) -> AdminState:
    """Start ``/system/observer`` on ``node`` (once; a second call returns
    the running agent's state)."""
    state = agent_state(node)
    if state is not None:
        return state
    state = AdminState(node.id, dead_letters)
    _STATES[node] = state
    await node.kernel.spawn_system(None, AdminAgent, state, restart="permanent", segment=SEGMENT)
    return state
