"""Group memberships of the other nodes, replicated with ``GroupUpdate``.

Each node announces only its own members: a snapshot when a link comes up,
then a patch per join or leave. What a peer announced is held per peer and
bounded by ``max_group_members`` (memberships) and ``max_group_name``
(characters in a group name); past them the entries are ignored and logged,
and only that peer's entries are affected. A peer's memberships vanish when
it is declared down (or leaves), like its names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocols import GroupUpdate, WireRef
from ._wire import wire_ref

if TYPE_CHECKING:
    from ..runtime import ActorRef, Node
    from ._config import RemoteConfig
    from ._peer import Peer

#: Memberships per snapshot envelope: a node with many members sends its
#: snapshot in pieces, each far below ``max_frame_size``.
SNAPSHOT_CHUNK = 5_000


class PeerGroups:
    """What one peer announced: group -> its members there, in join order."""

    __slots__ = ("count", "groups")

    def __init__(self) -> None:
        self.groups: dict[str, dict[ActorRef, None]] = {}
        self.count = 0

    def add(self, group: str, ref: ActorRef) -> bool:
        refs = self.groups.setdefault(group, {})
        if ref in refs:
            return False
        refs[ref] = None
        self.count += 1
        return True

    def remove(self, group: str, ref: ActorRef) -> bool:
        refs = self.groups.get(group)
        if refs is None or ref not in refs:
            return False
        del refs[ref]
        self.count -= 1
        if not refs:
            del self.groups[group]
        return True


class GroupTable:
    """Every peer's memberships (held by ``Remoting``)."""

    __slots__ = ("by_peer", "config", "node", "resolve")

    def __init__(
        self, node: Node, config: RemoteConfig, resolve: Callable[[str, str, int], ActorRef]
    ) -> None:
        self.node = node
        self.config = config
        self.resolve = resolve
        self.by_peer: dict[str, PeerGroups] = {}

    # ------------------------------------------------------------ reading

    def members(self, group: str) -> list[ActorRef]:
        out: list[ActorRef] = []
        for node_id in sorted(self.by_peer):
            refs = self.by_peer[node_id].groups.get(group)
            if refs:
                out.extend(refs)
        return out

    def names(self) -> set[str]:
        found: set[str] = set()
        for held in self.by_peer.values():
            found.update(held.groups)
        return found

    def count(self, node_id: str) -> int:
        held = self.by_peer.get(node_id)
        return 0 if held is None else held.count

    # ------------------------------------------------------------ writing

    def apply(self, peer: Peer, env: GroupUpdate) -> None:
        from ._inbound import bad_message

        if env.node != peer.node_id:
            bad_message(peer, f"group update for node {env.node!r}")
            return
        held = self.by_peer.get(peer.node_id)
        if held is None or env.snapshot:
            held = self.by_peer[peer.node_id] = PeerGroups()
        changed = env.snapshot
        for group, wires in env.left.items():
            for wire in wires:
                if wire.node == peer.node_id:
                    changed |= held.remove(group, self.resolve(wire.node, wire.path, wire.uid))
        limit, longest = self.config.max_group_members, self.config.max_group_name
        refused = forged = 0
        for group, wires in env.joined.items():
            if not group or len(group) > longest:
                bad_message(
                    peer, f"a group name of {len(group)} characters (max_group_name {longest})"
                )
                continue
            for wire in wires:
                if wire.node != peer.node_id:
                    forged += 1  # a node announces only its own actors
                    continue
                ref = self.resolve(wire.node, wire.path, wire.uid)
                if ref in held.groups.get(group, ()):
                    continue
                if held.count >= limit:
                    refused += 1
                    continue
                changed |= held.add(group, ref)
        # One log line per envelope, however many entries it got wrong.
        if forged:
            bad_message(peer, f"{forged} group memberships of other nodes' actors ignored")
        if refused:
            bad_message(
                peer, f"more than {limit} group memberships (max_group_members): {refused} ignored"
            )
        if not held.count:
            self.by_peer.pop(peer.node_id, None)
        if changed:
            self.node.kernel.groups.wake()

    def drop(self, node_id: str) -> None:
        """The peer is down: its members are gone."""
        if self.by_peer.pop(node_id, None) is not None:
            self.node.kernel.groups.wake()

    # ------------------------------------------------------------ sending

    def snapshot(self) -> list[GroupUpdate]:
        """This node's memberships for a peer whose link just came up: one
        snapshot envelope (maybe empty), then patches of at most
        ``SNAPSHOT_CHUNK`` memberships each."""
        node_id = self.node.id
        out: list[GroupUpdate] = []
        chunk: dict[str, list[WireRef]] = {}
        size = 0
        for group, refs in self.node.kernel.groups.items():
            for ref in refs:
                chunk.setdefault(group, []).append(wire_ref(ref))
                size += 1
                if size >= SNAPSHOT_CHUNK:
                    out.append(GroupUpdate(node_id, chunk, {}, snapshot=not out))
                    chunk, size = {}, 0
        if chunk or not out:
            out.append(GroupUpdate(node_id, chunk, {}, snapshot=not out))
        return out

    def changed(self, group: str, ref: ActorRef, joined: bool) -> GroupUpdate:
        entry = {group: [wire_ref(ref)]}
        return GroupUpdate(self.node.id, entry if joined else {}, {} if joined else entry)
