"""Where a persistent actor gets its store: the node-shared one for its URL.

``url`` None means the node's default store (``open_node(store=...)``). The
store is shared by every user of that URL on the node (one backend pool) and
closed by the node, after the actors that use it have stopped; the returned
exit stack has nothing to close and is kept for the actor's symmetry.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from ..stores import Store

if TYPE_CHECKING:
    from ..actors import ActorContext

__all__ = ["open_actor_store"]


async def open_actor_store(ctx: ActorContext, url: str | None) -> tuple[Store, AsyncExitStack]:
    """The store for ``url`` (None: the node's default) and what closes it."""
    return await ctx.store(url), AsyncExitStack()
