"""Groups (Erlang's ``pg``): many actors under one group name, cluster-wide.

``Groups`` keeps this node's own memberships (group -> refs, in join order)
and the version that ``node.registry`` caches member lists by. The remote
layer is told of every local change (``listener``) and replicates it; it
calls ``wake`` when another node's memberships change, which wakes every
``wait_for_members``.

An actor leaves all its groups as soon as it begins to stop (and, should it
die some other way, in ``Kernel.forget``), so the memberships of this node
are bounded by its live actors times the groups each joined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from ._ref import ActorRef

GroupListener = Callable[[str, "ActorRef", bool], None]

#: The longest group name this node accepts from its own program (peers are
#: held to ``max_group_name`` of their RemoteConfig).
MAX_GROUP_NAME = 255


def check_group(group: object) -> str:
    if not isinstance(group, str) or not group:
        raise ConfigurationError(f"a group name must be a non-empty string, not {group!r}")
    if len(group) > MAX_GROUP_NAME:
        raise ConfigurationError(
            f"a group name is at most {MAX_GROUP_NAME} characters, got {len(group)}"
        )
    return group


def group_of(cls: type) -> str | None:
    """The group a class's instances join (``__trouper_group__``), checked."""
    group = getattr(cls, "__trouper_group__", None)
    if group is None:
        return None
    try:
        return check_group(group)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{cls.__name__}.__trouper_group__: {exc}") from None


class Groups:
    """This node's group memberships."""

    __slots__ = ("_by_ref", "_changed", "_local", "listener", "version")

    def __init__(self) -> None:
        self._local: dict[str, dict[ActorRef, None]] = {}
        self._by_ref: dict[ActorRef, list[str]] = {}
        self._changed = trio.Event()
        #: Bumped on every change here or on another node.
        self.version = 0
        #: Told of every local change (the remote layer spreads them).
        self.listener: GroupListener | None = None

    def __len__(self) -> int:
        """Memberships (an actor in two groups counts twice)."""
        return sum(len(refs) for refs in self._local.values())

    def members(self, group: str) -> list[ActorRef]:
        return list(self._local.get(group, ()))

    def names(self) -> list[str]:
        return list(self._local)

    def items(self) -> list[tuple[str, list[ActorRef]]]:
        return [(group, list(refs)) for group, refs in self._local.items()]

    def join(self, group: str, ref: ActorRef) -> None:
        check_group(group)
        refs = self._local.setdefault(group, {})
        if ref in refs:
            return
        refs[ref] = None
        self._by_ref.setdefault(ref, []).append(group)
        self._notify(group, ref, True)

    def leave(self, group: str, ref: ActorRef) -> None:
        refs = self._local.get(group)
        if refs is None or ref not in refs:
            return
        del refs[ref]
        if not refs:
            del self._local[group]
        groups = self._by_ref[ref]
        groups.remove(group)
        if not groups:
            del self._by_ref[ref]
        self._notify(group, ref, False)

    def leave_all(self, ref: ActorRef) -> None:
        """The actor stopped: it leaves every group it was in."""
        for group in list(self._by_ref.get(ref, ())):
            self.leave(group, ref)

    def groups_of(self, ref: ActorRef) -> list[str]:
        return list(self._by_ref.get(ref, ()))

    def _notify(self, group: str, ref: ActorRef, joined: bool) -> None:
        self.wake()
        if self.listener is not None:
            self.listener(group, ref, joined)

    def wake(self) -> None:
        """Memberships changed (here or elsewhere): wake the waiters."""
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self) -> None:
        """Wait for the next change (callers check again)."""
        await self._changed.wait()
