"""Running a node: the nursery its cells live in, and the way out.

``hosted(node)`` is the runtime's half of ``open_node``: it hosts the nursery
every cell task runs in, watches for a failure past the guardians, and on the
way out stops everything gracefully: ``/user`` first, then the remote layer
(goodbyes to peers), then ``/system``, each level children first and in
reverse start order, with ``on_stop`` run; what outlives ``shutdown_timeout``
is killed.

An exception raised by the body of ``async with open_node()`` alone comes
out unwrapped, as if the node were not there; a failure of the node itself
comes out as a ``BaseExceptionGroup`` (nothing fails silently), except a
``KeyboardInterrupt``, which comes out as itself after the graceful stop.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from . import _lifecycle as life
from ._ref import current_node_id
from ._states import DEAD, STOPPING
from ._sysmsg import Stop

if TYPE_CHECKING:
    from ._node import Node

log = logging.getLogger("trouper")


@asynccontextmanager
async def hosted(node: Node) -> AsyncIterator[Node]:
    body_exc: BaseException | None = None
    unwrap: BaseException | None = None
    host_scope = trio.CancelScope(shield=True)
    named = current_node_id.set(node.id)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_host_actors, node, host_scope)
            nursery.start_soon(_watch_failure, node, name=f"trouper {node.id} root")
            try:
                if node.remote is not None:
                    await node.remote.start()
                yield node
            except BaseException as exc:
                body_exc = exc
                raise
            finally:
                await _shutdown(node, host_scope)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is body_exc:
            unwrap = body_exc
        else:
            interrupt = group.subgroup(KeyboardInterrupt)
            if interrupt is None or interrupt.exceptions != group.exceptions:
                raise
            unwrap = interrupt.exceptions[0]
    finally:
        current_node_id.reset(named)
    if unwrap is not None:
        try:
            raise unwrap
        finally:
            unwrap = body_exc = None


async def _host_actors(
    node: Node, scope: trio.CancelScope, task_status: trio.TaskStatus[None]
) -> None:
    """Host the nursery every cell task runs in.

    It is shielded from the caller's cancellation, so that leaving
    ``open_node`` because of a cancellation still stops the actors
    gracefully (their tasks must run for that); ``_shutdown`` cancels it.
    """
    kernel = node.kernel
    with scope:
        async with trio.open_nursery() as nursery:
            kernel._nursery = nursery
            nursery.start_soon(kernel.timers.run, name=f"trouper {node.id} timers")
            task_status.started()
            await trio.sleep_forever()


async def _watch_failure(node: Node) -> None:
    # Raising here cancels the body of ``open_node``; its ``finally`` then
    # stops the remaining actors gracefully before the group comes out.
    await node.kernel.failed.wait()
    assert node.kernel.failure is not None
    raise node.kernel.failure


async def _stop_guardian(cell: object) -> None:
    from ._cell import Cell

    assert isinstance(cell, Cell)
    if cell.state != DEAD:
        if cell.state < STOPPING:
            cell.system(Stop("shutdown"))
        await cell.wait_dead()


async def _shutdown(node: Node, host_scope: trio.CancelScope) -> None:
    """Stop /user, then the remote layer, then /system; kill what is left."""
    guardians = (node._user, node._system)
    try:
        with trio.move_on_after(node.shutdown_timeout, shield=True) as scope:
            await _stop_guardian(node._user)
            if node.remote is not None:
                await node.remote.close()
            await _stop_guardian(node._system)
        if scope.cancelled_caught:
            log.warning(
                "node %s: shutdown took over %ss; killing what is left",
                node.id,
                node.shutdown_timeout,
            )
            # Kill, not just cancel: killed cells are finalized, so their
            # watchers hear of it and pending asks fail with ActorDead.
            for guardian in guardians:
                life.kill(guardian)
            with trio.move_on_after(1.0, shield=True):
                for guardian in guardians:
                    await guardian.wait_dead()
    finally:
        # Whatever happened above, the actors' nursery must close, or
        # open_node would never exit.
        if node.remote is not None:
            node.remote.abort()
        host_scope.cancel()
