"""Load balancing over a group's members: pure policies, no trio, no I/O.

A proxy asks its balancer to ``pick`` one of the group's current members for
each call, and tells it when the call ``started`` and ``finished`` (only
least-outstanding counts them). ``avoid`` holds the members this call should
not try again (a retry goes to another member when there is one) or whose
breaker is open; when every member is avoided one of them is picked anyway,
so the caller gets the member's own answer (say, ``CircuitOpen``) rather than
nothing. ``None`` comes back only for an empty group.

Consistent hashing puts ``VNODES`` points per member on a ring of 64-bit
blake2b hashes (stable across processes and Python versions, unlike
``hash()``); a key goes to the first point at or after its own hash, so a
member joining or leaving moves only the keys of the arcs it takes or gives
up: about 1/N of them.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import msgspec

from .._errors import ConfigurationError
from .._options import closest

if TYPE_CHECKING:
    from ..runtime import ActorRef

__all__ = [
    "BALANCE_SPECS",
    "Balancer",
    "ConsistentHash",
    "HashRing",
    "LeastOutstanding",
    "LocalFirst",
    "RoundRobin",
    "make_balancer",
]

BALANCE_SPECS: tuple[str, ...] = ("round-robin", "least-outstanding", "local-first")
#: Points per member on the ring: enough that each member's share of the keys
#: is within a few percent of 1/N for a handful of members.
VNODES = 160


class Balancer(Protocol):
    def pick(
        self,
        members: Sequence[ActorRef],
        *,
        key: object | None,
        avoid: Collection[ActorRef],
        local_node: str,
    ) -> ActorRef | None: ...

    def started(self, ref: ActorRef) -> None: ...

    def finished(self, ref: ActorRef) -> None: ...


def _usable(members: Sequence[ActorRef], avoid: Collection[ActorRef]) -> Sequence[ActorRef]:
    """The members not avoided, or all of them when every one is avoided."""
    if not avoid:
        return members
    usable = [m for m in members if m not in avoid]
    return usable or members


class RoundRobin:
    """Each member in turn. The cursor is a plain counter, so members joining
    or leaving shift the turn but never starve anyone for long."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self,
        members: Sequence[ActorRef],
        *,
        key: object | None = None,
        avoid: Collection[ActorRef] = (),
        local_node: str = "",
    ) -> ActorRef | None:
        usable = _usable(members, avoid)
        if not usable:
            return None
        ref = usable[self._next % len(usable)]
        self._next = (self._next + 1) % (1 << 62)
        return ref

    def started(self, ref: ActorRef) -> None:
        pass

    def finished(self, ref: ActorRef) -> None:
        pass


class LeastOutstanding:
    """The member with the fewest calls in flight from this balancer; ties
    go round-robin so that an idle group is still spread evenly. A member
    leaves the table when its last call finishes, so the table is bounded by
    the calls in flight."""

    __slots__ = ("_rr", "outstanding")

    def __init__(self) -> None:
        self.outstanding: dict[ActorRef, int] = {}
        self._rr = 0

    def pick(
        self,
        members: Sequence[ActorRef],
        *,
        key: object | None = None,
        avoid: Collection[ActorRef] = (),
        local_node: str = "",
    ) -> ActorRef | None:
        usable = _usable(members, avoid)
        if not usable:
            return None
        n = len(usable)
        start = self._rr % n
        self._rr = (self._rr + 1) % (1 << 62)
        best: ActorRef | None = None
        best_count = -1
        for i in range(n):
            ref = usable[(start + i) % n]
            count = self.outstanding.get(ref, 0)
            if best is None or count < best_count:
                best, best_count = ref, count
                if count == 0:
                    break
        return best

    def started(self, ref: ActorRef) -> None:
        self.outstanding[ref] = self.outstanding.get(ref, 0) + 1

    def finished(self, ref: ActorRef) -> None:
        count = self.outstanding.get(ref, 0) - 1
        if count > 0:
            self.outstanding[ref] = count
        else:
            self.outstanding.pop(ref, None)


class LocalFirst:
    """Members on this node first (round-robin among them); the others,
    round-robin, only when no local member is usable."""

    __slots__ = ("_local", "_remote")

    def __init__(self) -> None:
        self._local = RoundRobin()
        self._remote = RoundRobin()

    def pick(
        self,
        members: Sequence[ActorRef],
        *,
        key: object | None = None,
        avoid: Collection[ActorRef] = (),
        local_node: str = "",
    ) -> ActorRef | None:
        local = [m for m in members if m.node_id == local_node and m not in avoid]
        if local:
            return self._local.pick(local)
        others = [m for m in members if m.node_id != local_node and m not in avoid]
        if others:
            return self._remote.pick(others)
        return self._remote.pick(members)  # all avoided: any of them

    def started(self, ref: ActorRef) -> None:
        pass

    def finished(self, ref: ActorRef) -> None:
        pass


KeyFunction = Callable[[Mapping[str, Any]], object]


@attrs.frozen
class ConsistentHash:
    """Send calls with the same key to the same member: ``key`` is the name
    of a parameter of the called method, or a function of the call's
    arguments (a dict, parameter name -> value) returning the key."""

    key: str | KeyFunction

    def __attrs_post_init__(self) -> None:
        if isinstance(self.key, str):
            if not self.key.isidentifier():
                raise ConfigurationError(
                    f"ConsistentHash.key must be a parameter name or a function, not {self.key!r}"
                )
        elif not callable(self.key):
            raise ConfigurationError(
                f"ConsistentHash.key must be a parameter name or a function, not {self.key!r}"
            )

    def key_of(self, args: Mapping[str, Any]) -> object:
        """The call's key; ``ConfigurationError`` if it names no argument."""
        if callable(self.key):
            return self.key(args)
        try:
            return args[self.key]
        except KeyError:
            valid = sorted(args)
            match = closest(self.key, valid)
            hint = f" (did you mean {match!r}?)" if match else f" (arguments: {valid})"
            raise ConfigurationError(
                f"ConsistentHash(key={self.key!r}): the call has no argument {self.key!r}{hint}"
            ) from None


def stable_hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def key_bytes(key: object) -> bytes:
    """A key's bytes, the same in every process: str and bytes as they are,
    anything else by its JSON encoding (numbers, tuples, msgspec Structs...).
    A key msgspec cannot encode is refused: its ``repr`` may hold a memory
    address, and each process would send it somewhere else."""
    if isinstance(key, bytes):
        return b"b" + key
    if isinstance(key, str):
        return b"s" + key.encode("utf-8", "surrogatepass")
    try:
        return b"j" + msgspec.json.encode(key)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigurationError(
            f"a ConsistentHash key must be a str, bytes, number or other value msgspec "
            f"can encode, not {type(key).__name__} ({exc})"
        ) from None


def _ref_bytes(ref: ActorRef) -> bytes:
    return f"{ref.node_id}/{ref.path}#{ref.uid}".encode("utf-8", "surrogatepass")


class HashRing:
    """The ring for one ``ConsistentHash`` spec. It is rebuilt only when the
    member list changes (a tuple compare per call otherwise). A call without
    a key goes round-robin."""

    __slots__ = ("_members", "_owners", "_points", "_rr", "spec")

    def __init__(self, spec: ConsistentHash | None = None) -> None:
        self.spec = spec
        self._members: tuple[ActorRef, ...] = ()
        self._points: list[int] = []
        self._owners: list[ActorRef] = []
        self._rr = RoundRobin()

    def _build(self, members: Sequence[ActorRef]) -> None:
        ring: list[tuple[int, ActorRef]] = []
        for ref in set(members):
            base = _ref_bytes(ref)
            ring.extend((stable_hash(base + b"/%d" % i), ref) for i in range(VNODES))
        ring.sort(key=lambda point: (point[0], point[1].node_id, point[1].path, point[1].uid))
        self._points = [h for h, _ in ring]
        self._owners = [ref for _, ref in ring]
        self._members = tuple(members)

    def owner(self, members: Sequence[ActorRef], key: object) -> ActorRef | None:
        """The member ``key`` belongs to (no avoidance)."""
        return self.pick(members, key=key)

    def pick(
        self,
        members: Sequence[ActorRef],
        *,
        key: object | None = None,
        avoid: Collection[ActorRef] = (),
        local_node: str = "",
    ) -> ActorRef | None:
        if not members:
            return None
        if key is None:
            return self._rr.pick(members, avoid=avoid)
        if tuple(members) != self._members:
            self._build(members)
        points, owners = self._points, self._owners
        start = bisect.bisect_left(points, stable_hash(key_bytes(key)))
        n = len(points)
        # Walk clockwise past avoided members: the key's next owner is the
        # one that would get it if the avoided ones left the group.
        for i in range(n):
            ref = owners[(start + i) % n]
            if ref not in avoid:
                return ref
        return owners[start % n]

    def started(self, ref: ActorRef) -> None:
        pass

    def finished(self, ref: ActorRef) -> None:
        pass


def make_balancer(spec: str | ConsistentHash) -> Balancer:
    """A fresh balancer for ``balance=spec``; ``ConfigurationError`` naming
    the closest valid spec for anything else."""
    if isinstance(spec, ConsistentHash):
        return HashRing(spec)
    if spec == "round-robin":
        return RoundRobin()
    if spec == "least-outstanding":
        return LeastOutstanding()
    if spec == "local-first":
        return LocalFirst()
    valid = ", ".join(repr(s) for s in BALANCE_SPECS)
    match = closest(spec, BALANCE_SPECS) if isinstance(spec, str) else None
    hint = f" (did you mean {match!r}?)" if match else ""
    raise ConfigurationError(
        f"balance must be one of {valid} or trouper.ConsistentHash(key=...), not {spec!r}{hint}"
    )
