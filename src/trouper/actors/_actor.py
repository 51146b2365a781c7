"""``Actor``, ``@handler`` and the per-class dispatch table.

The dispatch table is built once per class, lazily (on the first message), so
that handlers may name message types that are defined after the actor class.
Lookups are cached per concrete message type: the first message of a type
walks its MRO to find the most specific handler (a handler for a base Struct
catches its subclasses unless a more specific handler exists), and every later
message of that type is one dict lookup.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, Union

from .._errors import ConfigurationError
from ..protocols._codec import default_registry
from ._messages import PoisonPill

if TYPE_CHECKING:
    from ..supervisors._strategy import Strategy
    from ._context import ActorContext

_HANDLER_MARK = "__trouper_handler__"

F = TypeVar("F", bound=Callable[..., Any])


def is_handler(fn: object) -> bool:
    """True for a function marked with ``@handler``."""
    return bool(getattr(fn, _HANDLER_MARK, False))


def handler(fn: F) -> F:
    """Mark an ``async def`` method as the handler for its annotated message type.

    The second parameter's annotation picks the messages it handles; a union
    registers each member. An async-generator handler is a stream: the caller
    iterates what it yields through ``ActorRef.stream``. A handler taking a
    third parameter, ``channel: trouper.Channel[Send, Receive]``, runs a
    two-way channel that the caller opens with ``ActorRef.channel``.
    """
    if not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
        raise ConfigurationError(f"@handler needs an async def or async generator, got {fn!r}")
    setattr(fn, _HANDLER_MARK, True)
    return fn


class Actor:
    """Base class of every actor.

    Subclasses define ``@handler`` methods (dispatch by the annotated message
    type), an optional ``receive`` fallback, and the lifecycle hooks below.
    ``self.ctx`` (the ``ActorContext``) is set before ``__init__`` runs.
    """

    ctx: ActorContext
    #: How this actor supervises its children: a ``OneForOne``, ``OneForAll``
    #: or ``RestForOne``, per class or set per instance in ``__init__``. None
    #: means the node's default (``open_node(supervision=...)``, by default
    #: ``OneForOne()``).
    supervision: Strategy | None = None

    _trouper_info: ClassVar[ClassInfo]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Register the message types now, so that a node can decode them
        # before any actor of this class has run. Annotations naming classes
        # defined later resolve on first use instead (class_info is lazy).
        try:
            class_info(cls)
        except ConfigurationError:
            pass

    async def on_start(self) -> None:
        """Runs in the actor before its first message (and after every restart)."""

    async def on_stop(self) -> None:
        """Runs when the actor stops, after its children have stopped."""

    async def on_restart(self, exc: BaseException) -> None:
        """Runs on the fresh instance after ``on_start``, when a supervisor restarted it."""


class Entry:
    """One row of a dispatch table: the function and whether it is a stream
    (an async generator) or a channel handler (``(self, msg, channel)``)."""

    __slots__ = ("accepts", "fn", "is_channel", "is_stream", "name", "special")

    def __init__(
        self,
        fn: Callable[..., Any],
        is_stream: bool,
        name: str,
        is_channel: bool = False,
        accepts: tuple[type, ...] | None = None,
    ) -> None:
        self.fn = fn
        self.is_stream = is_stream
        self.name = name
        self.is_channel = is_channel
        #: What a channel handler receives (``R`` of ``Channel[S, R]``); None: anything.
        self.accepts = accepts
        # Not an ask-or-tell handler: the cell's fast path leaves it alone.
        self.special = is_stream or is_channel


class ClassInfo:
    """What the runtime needs to know about an actor class, computed once."""

    __slots__ = (
        "cache",
        "declared",
        "fallback",
        "has_on_restart",
        "has_on_start",
        "has_on_stop",
        "message_types",
    )

    def __init__(self, cls: type[Actor]) -> None:
        self.declared: dict[type, Entry] = _collect_handlers(cls)
        if PoisonPill in self.declared:
            raise ConfigurationError(
                f"{cls.__qualname__}: PoisonPill cannot be handled (it always stops the actor)"
            )
        self.cache: dict[type, Entry | None] = dict(self.declared)
        # Never dispatched, even to ``receive``: the runtime acts on it.
        self.cache[PoisonPill] = None
        receive = getattr(cls, "receive", None)
        self.fallback: Entry | None = None
        if receive is not None:
            self.fallback = Entry(receive, inspect.isasyncgenfunction(receive), "receive")
        self.has_on_start = cls.on_start is not Actor.on_start
        self.has_on_stop = cls.on_stop is not Actor.on_stop
        self.has_on_restart = cls.on_restart is not Actor.on_restart
        self.message_types = tuple(t for t in self.declared if t is not object)

    def lookup(self, tp: type) -> Entry | None:
        """The handler for messages of type ``tp`` (MRO-aware, cached)."""
        try:
            return self.cache[tp]
        except KeyError:
            pass
        entry = self.fallback
        for base in tp.__mro__[1:]:
            found = self.declared.get(base)
            if found is not None:
                entry = found
                break
        self.cache[tp] = entry
        return entry


def is_channel_handler(fn: Callable[..., Any]) -> bool:
    """True for a handler of two-way channels: ``async def h(self, msg,
    channel: Channel[Send, Receive])``, opened with ``ref.channel(msg)``."""
    return len(inspect.signature(fn).parameters) == 3 and inspect.iscoroutinefunction(fn)


def channel_accepts(fn: Callable[..., Any]) -> tuple[type, ...] | None:
    """The classes a channel handler receives, from ``channel: Channel[S, R]``
    (``R``, as ``isinstance`` checks it), so that an item of another type ends
    the channel instead of reaching the handler; None: anything."""
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 3:
        return None
    try:
        hint = typing.get_type_hints(fn).get(params[2].name)
    except Exception:  # unresolvable: _message_types says so
        return None
    args = typing.get_args(hint)
    if len(args) != 2:
        return None
    accepted = _checkable(args[1])
    if accepted is not None and float in accepted:
        accepted = (*accepted, int)  # the numeric tower: an int is a fine float
    return accepted


def _checkable(ann: Any) -> tuple[type, ...] | None:
    if ann is Any or ann is object:
        return None
    if typing.get_origin(ann) is Union or isinstance(ann, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(ann):
            more = _checkable(arg)
            if more is None:
                return None
            out.extend(more)
        return tuple(out)
    if ann is None or ann is type(None):
        return (type(None),)
    origin = typing.get_origin(ann)
    if isinstance(origin, type):
        return (origin,)
    if isinstance(ann, type):
        return (ann,)
    return None  # a TypeVar, a Literal...: not checked


def class_info(cls: type[Actor]) -> ClassInfo:
    """The (lazily built, per-class) dispatch information of ``cls``."""
    info = cls.__dict__.get("_trouper_info")
    if info is None:
        info = ClassInfo(cls)
        # Stored on the class itself, not inherited: a subclass builds its own.
        type.__setattr__(cls, "_trouper_info", info)
    return typing.cast(ClassInfo, info)


def _collect_handlers(cls: type) -> dict[type, Entry]:
    table: dict[type, Entry] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)  # only the most derived definition of a name counts
            if not getattr(value, _HANDLER_MARK, False):
                continue
            for tp in _message_types(cls, value):
                if tp in table:
                    raise ConfigurationError(
                        f"{cls.__qualname__}: {tp!r} is handled by both {table[tp].name} and {name}"
                    )
                table[tp] = Entry(
                    value,
                    inspect.isasyncgenfunction(value),
                    name,
                    is_channel_handler(value),
                    channel_accepts(value),
                )
    return table


def _message_types(cls: type, fn: Callable[..., Any]) -> list[type]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) == 3 and inspect.isasyncgenfunction(fn):
        raise ConfigurationError(
            f"{cls.__qualname__}.{fn.__name__}: a channel handler (self, msg, channel) is an "
            "async def, not an async generator"
        )
    if len(params) not in (2, 3):
        raise ConfigurationError(
            f"{cls.__qualname__}.{fn.__name__}: a handler takes (self, msg), or (self, msg, "
            f"channel) for a two-way channel, got {len(params)}"
        )
    try:
        # Resolved in the module that defines the handler (fn.__globals__),
        # which is not the subclass's module when a handler is inherited.
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # NameError/TypeError from an unresolvable annotation
        raise ConfigurationError(
            f"{cls.__qualname__}.{fn.__name__}: cannot resolve the message annotation: {exc}"
        ) from exc
    ann = hints.get(params[1].name)
    if ann is None:
        raise ConfigurationError(
            f"{cls.__qualname__}.{fn.__name__}: annotate the message parameter with its type"
        )
    types_ = _flatten(ann, f"{cls.__qualname__}.{fn.__name__}")
    for tp in types_:
        register_message_type(tp)
    _register_nested(hints.get("return"))
    if len(params) == 3:
        from ..runtime._channels import Channel  # (the runtime is loaded by now)

        hint = hints.get(params[2].name)
        if hint is not Channel and typing.get_origin(hint) is not Channel:
            raise ConfigurationError(
                f"{cls.__qualname__}.{fn.__name__}: a handler's third parameter is its "
                f"channel: annotate {params[2].name} as trouper.Channel[Send, Receive]"
            )
        _register_nested(hint)  # what a channel carries, both ways
    return types_


def register_message_type(tp: Any) -> None:
    """Register a user class found in a handler annotation so it can cross the
    wire; builtins are always sendable and trouper's own types register
    themselves."""
    if not isinstance(tp, type) or tp is object or tp in default_registry:
        return
    if tp.__module__ == "builtins" or tp.__module__.startswith("trouper."):
        return
    try:
        default_registry.register(tp)
    except ConfigurationError:
        pass  # another class owns that name already: explicit registration decides


def _register_nested(ann: Any) -> None:
    """Register the classes inside a return annotation: ``-> Reply``,
    ``-> list[Item]``, ``-> AsyncIterator[Item]``, ``-> A | None``..."""
    if ann is None:
        return
    for arg in typing.get_args(ann):
        _register_nested(arg)
    register_message_type(ann)


def _flatten(ann: Any, where: str) -> list[type]:
    if ann is Any:
        return [object]
    origin = typing.get_origin(ann)
    if origin is Union or isinstance(ann, types.UnionType):
        out: list[type] = []
        for arg in typing.get_args(ann):
            out.extend(_flatten(arg, where))
        return out
    if origin is not None:
        # list[int] and friends dispatch on the runtime class (list).
        return [typing.cast(type, origin)]
    if ann is None or ann is type(None):
        return [type(None)]
    if isinstance(ann, type):
        return [ann]
    raise ConfigurationError(f"{where}: {ann!r} is not a type a handler can dispatch on")
