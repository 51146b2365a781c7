"""``Supervisor``: the static, OTP-style supervisor, an actor like any other.

It starts its child specs in order and supervises them with its strategy,
and it keeps the specs, so it answers OTP's administrative calls::

    children = await trouper.Supervisor.which_children(sup)
    await trouper.Supervisor.terminate_child(sup, "db")   # stopped, spec kept
    await trouper.Supervisor.restart_child(sup, "db")     # started again from it
    await trouper.Supervisor.delete_child(sup, "db")      # spec forgotten
    await trouper.Supervisor.start_child(sup, trouper.child(Cache, name="cache"))

A child's id is its registered ``name``, or else its class name (``Worker``,
then ``Worker-2``...). Restarts by the strategy keep a child's ref; a child
that is gone for good (terminated, or a temporary or transient child that
ended) has no ref, and a temporary child's spec is forgotten then, as in OTP.
Every call but ``start_child`` is a message that can cross nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .._errors import ConfigurationError, TrouperError
from ..actors import Actor, Terminated, handler
from ..protocols import default_registry
from ._strategy import ChildSpec, OneForOne, Strategy


class ChildInfo(msgspec.Struct, frozen=True):
    """One child as ``which_children`` reports it (OTP: ``{Id, Child, Type}``)."""

    id: str
    ref: Any  # the child's ActorRef, or None when it is not running
    restart: str
    supervisor: bool


class _Children(msgspec.Struct, frozen=True):
    """``which_children``'s answer on the wire (a typed list)."""

    children: list[ChildInfo]


class ChildCounts(msgspec.Struct, frozen=True):
    """``count_children``: specs, running children, and how many are supervisors."""

    specs: int
    active: int
    supervisors: int
    workers: int


class Answer(msgspec.Struct, frozen=True):
    """A supervisor's answer to an administrative call: a bad call (an
    unknown id, a child still running) is answered with ``error``, as OTP
    answers ``{error, running}``; it never fails the supervisor, which
    would restart every child."""

    value: Any = None
    error: str = ""


class WhichChildren(msgspec.Struct, frozen=True):
    pass


class CountChildren(msgspec.Struct, frozen=True):
    pass


class TerminateChild(msgspec.Struct, frozen=True):
    id: str


class RestartChild(msgspec.Struct, frozen=True):
    id: str


class DeleteChild(msgspec.Struct, frozen=True):
    id: str


_WIRE_TYPES: tuple[type, ...] = (
    ChildInfo,
    _Children,
    ChildCounts,
    Answer,
    WhichChildren,
    CountChildren,
    TerminateChild,
    RestartChild,
    DeleteChild,
)
for _tp in _WIRE_TYPES:
    default_registry.register(_tp, f"trouper:{_tp.__name__.lstrip('_')}")


class StartChild:
    """Local only: a spec holds a class, which never crosses the wire."""

    __slots__ = ("spec",)

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec


class Supervisor(Actor):
    """Starts ``children`` in order (each ``on_start`` finishing before the
    next begins) and supervises them with ``strategy``. Stopping it stops them
    in reverse order. A restart of the supervisor itself starts fresh ones."""

    def __init__(self, children: Sequence[ChildSpec], strategy: Strategy | None = None) -> None:
        self.specs: dict[str, ChildSpec] = {}
        self.refs: dict[str, Any] = {}
        for spec in children:
            if not isinstance(spec, ChildSpec):
                raise ConfigurationError(f"children must be trouper.child(...) specs, not {spec!r}")
            self.specs[self._id_for(spec)] = spec
        self.supervision = strategy or OneForOne()

    def _id_for(self, spec: ChildSpec) -> str:
        if spec.name is not None:
            if spec.name in self.specs:
                raise ConfigurationError(f"two children have the id {spec.name!r}")
            return spec.name
        base = spec.cls.__name__
        candidate, n = base, 1
        while candidate in self.specs:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    async def on_start(self) -> None:
        for id, spec in self.specs.items():
            await self._start(id, spec)

    async def _start(self, id: str, spec: ChildSpec) -> Any:
        ref = await self.ctx.spawn(spec)
        self.refs[id] = ref
        self.ctx.watch(ref)
        return ref

    def _id_of(self, ref: Any) -> str | None:
        for id, child in self.refs.items():
            if child == ref:
                return id
        return None

    @handler
    async def _child_gone(self, msg: Terminated) -> None:
        id = self._id_of(msg.ref)
        if id is None:
            return
        del self.refs[id]
        spec = self.specs.get(id)
        if spec is not None and spec.restart == "temporary":
            del self.specs[id]

    def _known(self, id: str) -> ChildSpec:
        spec = self.specs.get(id)
        if spec is None:
            raise _Refused(f"{self.ctx.self_ref.path} has no child {id!r}")
        return spec

    def _stopped(self, id: str) -> ChildSpec:
        spec = self._known(id)
        if id in self.refs:
            raise _Refused(f"child {id!r} is running: terminate it first (OTP)")
        return spec

    @handler
    async def _which(self, msg: WhichChildren) -> _Children:
        return _Children(
            [
                ChildInfo(id, self.refs.get(id), spec.restart, issubclass(spec.cls, Supervisor))
                for id, spec in self.specs.items()
            ]
        )

    @handler
    async def _count(self, msg: CountChildren) -> ChildCounts:
        sups = sum(1 for spec in self.specs.values() if issubclass(spec.cls, Supervisor))
        return ChildCounts(len(self.specs), len(self.refs), sups, len(self.specs) - sups)

    @handler
    async def _terminate(self, msg: TerminateChild) -> Answer:
        try:
            self._known(msg.id)
        except _Refused as exc:
            return Answer(error=str(exc))
        ref = self.refs.pop(msg.id, None)
        if ref is not None:
            self.ctx.unwatch(ref)
            await self.ctx.node.stop(ref)
        return Answer()

    @handler
    async def _restart(self, msg: RestartChild) -> Answer:
        try:
            spec = self._stopped(msg.id)
        except _Refused as exc:
            return Answer(error=str(exc))
        return Answer(await self._start(msg.id, spec))

    @handler
    async def _delete(self, msg: DeleteChild) -> Answer:
        try:
            self._stopped(msg.id)
        except _Refused as exc:
            return Answer(error=str(exc))
        del self.specs[msg.id]
        return Answer()

    @handler
    async def _start_child(self, msg: StartChild) -> Answer:
        spec = msg.spec
        try:
            id = self._id_for(spec)
        except ConfigurationError as exc:
            return Answer(error=str(exc))
        self.specs[id] = spec
        try:
            return Answer(await self._start(id, spec))
        except TrouperError as exc:  # it failed to start: nothing to keep
            self.specs.pop(id, None)
            return Answer(error=str(exc))

    # ---------------------------------------------------- the OTP calls

    @staticmethod
    async def which_children(sup: Any, timeout: float | None = 5.0) -> list[ChildInfo]:
        """Every child spec with its running ref (None if not running), in start order."""
        answer: _Children = await sup.ask(WhichChildren(), timeout=timeout)
        return [
            ChildInfo(c.id, _as_ref(sup, c.ref), c.restart, c.supervisor) for c in answer.children
        ]

    @staticmethod
    async def count_children(sup: Any, timeout: float | None = 5.0) -> ChildCounts:
        result: ChildCounts = await sup.ask(CountChildren(), timeout=timeout)
        return result

    @staticmethod
    async def terminate_child(sup: Any, id: str, timeout: float | None = 30.0) -> None:
        """Stop the child (its shutdown time applies) and keep its spec."""
        _unwrap(await sup.ask(TerminateChild(id), timeout=timeout))

    @staticmethod
    async def restart_child(sup: Any, id: str, timeout: float | None = 30.0) -> Any:
        """Start a terminated child again from its spec; returns its new ref."""
        return _as_ref(sup, _unwrap(await sup.ask(RestartChild(id), timeout=timeout)))

    @staticmethod
    async def delete_child(sup: Any, id: str, timeout: float | None = 5.0) -> None:
        """Forget the spec of a terminated child."""
        _unwrap(await sup.ask(DeleteChild(id), timeout=timeout))

    @staticmethod
    async def start_child(sup: Any, spec: ChildSpec, timeout: float | None = 30.0) -> Any:
        """Add ``spec`` and start it (a supervisor on this node); returns its ref."""
        return _unwrap(await sup.ask(StartChild(spec), timeout=timeout))


class _Refused(Exception):
    pass


def _unwrap(answer: Answer) -> Any:
    if answer.error:
        raise ConfigurationError(answer.error)
    return answer.value


def _as_ref(sup: Any, value: Any) -> Any:
    """A child's ref from an answer: from another node it arrives as
    ``[node, path, uid]`` (the answer's fields are untyped), and becomes a
    ref that routes through the node ``sup`` came from."""
    if value is None or not isinstance(value, list):
        return value
    from ..runtime import node_of

    node = node_of(sup)
    remote: Any = None if node is None else node.remote
    if remote is None:
        return value
    node_id, path, uid = value
    return remote.resolve(node_id, path, uid)
