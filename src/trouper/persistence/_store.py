"""Where a persistent actor gets its store: the one function to switch over to
the node-shared stores (``await ctx.store(url)``) when they exist.

Until then each actor opens its own store with ``open_store(url)`` and closes
it when it stops; ``url`` None means the node's default store, which needs
``ctx.store``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from ..stores import Store, open_store

if TYPE_CHECKING:
    from ..actors import ActorContext

__all__ = ["open_actor_store"]


async def open_actor_store(ctx: ActorContext, url: str | None) -> tuple[Store, AsyncExitStack]:
    """The store for ``url`` (None: the node's default) and what closes it."""
    stack = AsyncExitStack()
    shared: Any = getattr(ctx, "store", None)
    if shared is not None:  # node-shared stores: the node closes them, not us
        return await shared(url), stack
    if url is None:
        raise ConfigurationError(
            f"{ctx.self_ref.path}: set store_url on the persistent actor class"
            " (this node has no default store)"
        )
    store = await stack.enter_async_context(open_store(url))
    return store, stack
