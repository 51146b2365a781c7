"""Names: the actors of this node registered by name, the cluster-wide view
(``node.registry``), and the lookups waiting for a name to appear.

A waiter is registered only while a ``lookup(name, timeout=)`` waits, and is
removed when it returns, found or not, so lookups of names that never appear
leave nothing behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .._errors import ActorNotFound, ConfigurationError, NameTaken
from ._groups import Groups, check_group

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._spi import RemoteLayer

Listener = Callable[[str, "ActorRef", bool], None]
#: Member lists ``Registry.members`` keeps between two changes.
_CACHED_GROUPS = 1024


class Names:
    """This node's own names (name -> ref), kept by the runtime."""

    __slots__ = ("_local", "_waiters", "listener", "node_id")

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._local: dict[str, ActorRef] = {}
        self._waiters: dict[str, tuple[trio.Event, int]] = {}
        #: Told of every change (the remote layer spreads them to peers).
        self.listener: Listener | None = None

    def __len__(self) -> int:
        return len(self._local)

    def get(self, name: str) -> ActorRef | None:
        return self._local.get(name)

    def items(self) -> list[tuple[str, ActorRef]]:
        return list(self._local.items())

    def register(self, name: str, ref: ActorRef) -> None:
        check_name(name)
        existing = self._local.get(name)
        if existing is not None:
            if existing == ref:
                return
            raise NameTaken(f"the name {name!r} is taken on node {self.node_id} by {existing}")
        self._local[name] = ref
        self.wake(name)
        if self.listener is not None:
            self.listener(name, ref, True)

    def unregister(self, name: str, ref: ActorRef | None = None) -> None:
        """Remove ``name`` (only if it still names ``ref``, when given)."""
        existing = self._local.get(name)
        if existing is None or (ref is not None and existing != ref):
            return
        del self._local[name]
        if self.listener is not None:
            self.listener(name, existing, False)

    def wake(self, name: str) -> None:
        """A name appeared (here, or on another node): wake its lookups."""
        entry = self._waiters.get(name)
        if entry is not None:
            event, count = entry
            event.set()
            self._waiters[name] = (trio.Event(), count)

    async def wait(self, name: str) -> None:
        """Wait until ``name`` may have appeared (callers check again)."""
        event, count = self._waiters.get(name, (trio.Event(), 0))
        self._waiters[name] = (event, count + 1)
        try:
            await event.wait()
        finally:
            current, count = self._waiters[name]
            if count <= 1:
                del self._waiters[name]
            else:
                self._waiters[name] = (current, count - 1)

    @property
    def waiting(self) -> int:
        """Names with a lookup waiting for them (bounded by the waiting tasks)."""
        return len(self._waiters)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("$"):
        raise ConfigurationError(
            f"invalid actor name {name!r}: a non-empty string without '/' "
            "that does not start with '$'"
        )
    if len(name) > 255:
        raise ConfigurationError(f"an actor name is at most 255 characters, got {len(name)}")
    return name


class Registry:
    """Names across the cluster (``node.registry``): this node's own, and
    those every other node announced. A local name wins over a remote one;
    between two remote nodes holding the same name, the smaller node id wins.
    Names owned by a node vanish when it leaves or is declared down.

    It also holds the groups (Erlang's ``pg``): many actors per group name,
    on any node; see ``members``."""

    __slots__ = ("_cache", "_groups", "_names", "_remote")

    def __init__(self, names: Names, groups: Groups | None = None) -> None:
        self._names = names
        self._groups = groups if groups is not None else Groups()
        self._remote: RemoteLayer | None = None
        #: Member lists by group, valid for one ``Groups.version``: a proxy
        #: asks for them on every call.
        self._cache: tuple[int, dict[str, tuple[ActorRef, ...]]] = (-1, {})

    def _attach(self, remote: RemoteLayer) -> None:
        self._remote = remote

    def get(self, name: str) -> ActorRef | None:
        """The ref registered under ``name`` anywhere in the cluster, or None."""
        ref = self._names.get(name)
        if ref is None and self._remote is not None:
            ref = self._remote.lookup(name)
        return ref

    def names(self) -> list[str]:
        """Every name known in the cluster, sorted."""
        found = {name for name, _ in self._names.items()}
        if self._remote is not None:
            found.update(self._remote.names())
        return sorted(found)

    def local(self) -> dict[str, ActorRef]:
        """The names registered on this node."""
        return dict(self._names.items())

    def register(self, name: str, ref: ActorRef) -> None:
        """Give an actor of this node one more name (Erlang's ``register/2``);
        ``NameTaken`` if another actor has it. The name goes when the actor
        stops, or with ``unregister``."""
        cell = self._live_local(ref)._cell
        assert cell is not None
        self._names.register(name, ref)
        cell.node.kernel.extra_name(cell, name)

    def unregister(self, name: str) -> None:
        """Remove a name of this node (the actor keeps running)."""
        self._names.unregister(name)

    # ------------------------------------------------------------ groups

    def members(self, group: str) -> list[ActorRef]:
        """The members of ``group`` across the cluster: this node's first
        (in join order), then each other node's, by node id."""
        version, cache = self._cache
        if version != self._groups.version:
            cache = {}
            self._cache = (self._groups.version, cache)
        found = cache.get(group)
        if found is None:
            if len(cache) >= _CACHED_GROUPS:
                cache.clear()  # bounded whatever names callers ask for
            refs = self._groups.members(group)
            if self._remote is not None:
                refs.extend(self._remote.group_members(group))
            found = cache[group] = tuple(refs)
        return list(found)

    def groups(self) -> list[str]:
        """Every group with a member somewhere in the cluster, sorted."""
        found = set(self._groups.names())
        if self._remote is not None:
            found.update(self._remote.group_names())
        return sorted(found)

    def join(self, group: str, ref: ActorRef) -> None:
        """Add an actor of this node to ``group`` (it may be in many); it
        leaves when it stops, or with ``leave``."""
        check_group(group)
        self._groups.join(group, self._live_local(ref))

    def leave(self, group: str, ref: ActorRef) -> None:
        """Take an actor of this node out of ``group`` (no error if it is not in it)."""
        self._groups.leave(group, ref)

    async def wait_for_members(
        self, group: str, n: int = 1, timeout: float | None = 10.0
    ) -> list[ActorRef]:
        """The members of ``group`` once it has at least ``n``;
        ``ActorNotFound`` if it has fewer after ``timeout`` seconds."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"wait_for_members needs an int n >= 1, not {n!r}")
        with trio.move_on_after(math.inf if timeout is None else timeout):
            while len(found := self.members(group)) < n:
                await self._groups.wait()
            await trio.lowlevel.checkpoint()
            return found
        have = len(self.members(group))
        raise ActorNotFound(f"group {group!r} has {have} members, not {n}, after {timeout}s")

    def _live_local(self, ref: ActorRef) -> ActorRef:
        cell = ref._cell
        if cell is None or cell.node.kernel.names is not self._names:
            raise ConfigurationError(f"{ref} is not an actor of this node")
        if cell.dead:
            raise ConfigurationError(f"{ref} is dead")
        return ref

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __len__(self) -> int:
        return len(self.names())
