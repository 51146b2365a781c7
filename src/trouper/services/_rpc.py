"""``@trouper.service`` and ``@trouper.rpc``: what a service class declares.

The decorators only record; the table of a class (one ``Method`` per rpc
method, each with a generated msgspec Struct of its parameters and a typed
decoder for it) is built on first use, so annotations may name classes
defined after the service.
"""

from __future__ import annotations

import dis
import inspect
import logging
import types
import typing
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

import msgspec

from .._errors import ConfigurationError, InvalidArgument
from ..actors import Actor
from ..actors._actor import class_info, handler, register_message_type
from ..runtime import ActorRef, Channel
from ._channels import channel_parameter, received_types

if TYPE_CHECKING:
    from ._chanrpc import ChannelOpening

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A")
S = TypeVar("S")
R = TypeVar("R")
P = ParamSpec("P")
C = TypeVar("C", bound=type[Actor])

log = logging.getLogger("trouper")

_RPC_MARK = "__trouper_rpc__"
_TABLE = "__trouper_rpc_table__"


class RpcOptions(msgspec.Struct, frozen=True):
    idempotent: bool
    roles: frozenset[str]


class _Rpc(Protocol):
    """What ``@rpc(...)`` with options returns: the decorator itself."""

    @overload
    def __call__(
        self, fn: Callable[Concatenate[A, Channel[S, R], P], Coroutine[Any, Any, None]], /
    ) -> Callable[Concatenate[A, P], ChannelOpening[R, S]]: ...
    @overload
    def __call__(self, fn: F, /) -> F: ...


# A method whose first parameter is its channel is typed as what the proxy
# makes of it (``async with proxy.m(args) as channel``); any other as itself.
@overload
def rpc(
    fn: Callable[Concatenate[A, Channel[S, R], P], Coroutine[Any, Any, None]], /
) -> Callable[Concatenate[A, P], ChannelOpening[R, S]]: ...
@overload
def rpc(fn: F, /) -> F: ...
@overload
def rpc(*, idempotent: bool = False, roles: Collection[str] = ()) -> _Rpc: ...
def rpc(fn: Any = None, /, *, idempotent: bool = False, roles: Collection[str] = ()) -> Any:
    """Mark an ``async def`` (or async generator: a server stream) method of a
    ``@trouper.service`` class as callable through ``node.proxy``. An ``async
    def`` with a parameter annotated ``trouper.Channel[Send, Receive]`` is a
    channel method: ``async with proxy.m(...) as channel``.

    ``idempotent=True`` lets a proxy retry it on any member after any
    retryable error; otherwise it runs at most once per logical call.
    ``roles``: what a caller's token must grant (token authentication).
    """
    if isinstance(roles, str):
        raise ConfigurationError(f"roles is a collection of names, not the string {roles!r}")
    options = RpcOptions(bool(idempotent), frozenset(roles))

    def mark(f: F) -> F:
        if not (inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)):
            raise ConfigurationError(f"@rpc needs an async def or async generator, got {f!r}")
        setattr(f, _RPC_MARK, options)
        return f

    return mark if fn is None else mark(fn)


class Method:
    """One rpc method of a service class, ready to decode and call."""

    __slots__ = (
        "accepts",
        "args_type",
        "channel",
        "decoder",
        "defaults",
        "fn",
        "has_refs",
        "idempotent",
        "is_stream",
        "name",
        "params",
        "qualname",
        "returns",
        "roles",
        "suspends",
    )

    def __init__(self, cls: type, name: str, fn: Callable[..., Any], options: RpcOptions) -> None:
        self.name = name
        self.fn = fn
        self.qualname = f"{cls.__qualname__}.{name}"
        self.idempotent = options.idempotent
        self.roles = options.roles
        self.is_stream = inspect.isasyncgenfunction(fn)
        self.suspends = may_suspend(fn)
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:  # an unresolvable annotation names itself
            raise ConfigurationError(f"{self.qualname}: cannot resolve annotations: {exc}") from exc
        #: The parameter that takes a two-way channel (not an argument), and
        #: what the channel receives (None: anything).
        self.channel = channel_parameter(fn)
        self.accepts = None if self.channel is None else received_types(hints[self.channel])
        if self.channel is not None and self.is_stream:
            raise ConfigurationError(
                f"{self.qualname}: a method that takes a channel is an async def, not a stream"
            )
        fields: list[Any] = []
        params: list[str] = []
        defaults: dict[str, Any] = {}
        for p in list(inspect.signature(fn).parameters.values())[1:]:
            if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                raise ConfigurationError(f"{self.qualname}: *args and **kwargs cannot be rpc")
            ann = hints.get(p.name, Any)
            _register(ann)
            if p.name == self.channel:
                continue  # given by the server, not by the caller
            params.append(p.name)
            if p.default is p.empty:
                fields.append((p.name, ann))
            else:
                defaults[p.name] = p.default
                fields.append((p.name, ann, p.default))
        _register(hints.get("return"))
        #: What a reply from another node is converted to: the wire keeps
        #: only the top-level type, so ``-> list[Item]`` arrives as a list
        #: of dicts. None when the wire's value is already what is declared.
        self.returns = None if self.is_stream else _typed_return(hints.get("return"))
        self.params = tuple(params)
        self.has_refs = any(_mentions_ref(f[1], set()) for f in fields)
        self.defaults = defaults
        self.args_type = msgspec.defstruct(
            f"{cls.__name__}_{name}_args", fields, forbid_unknown_fields=True
        )
        self.decoder = msgspec.msgpack.Decoder(self.args_type, dec_hook=_decode_ref)

    def pack(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The arguments of a call as msgpack (a map by parameter name).
        Missing or unknown arguments are refused here, before anything is sent."""
        params = self.params
        if not kwargs and len(args) == len(params):
            # The common calls, without zip(strict=True) (half their cost):
            # the lengths are equal already.
            if len(args) == 1:
                values = {params[0]: args[0]}
            else:
                values = dict(zip(params, args, strict=False))
        else:
            if len(args) > len(params):
                raise InvalidArgument(
                    f"{self.qualname} takes {len(params)} arguments, {len(args)} were given"
                )
            values = dict(zip(params, args, strict=False))
            for k, v in kwargs.items():
                if k not in params:
                    raise InvalidArgument(f"{self.qualname} has no parameter {k!r}")
                if k in values:
                    raise InvalidArgument(f"{self.qualname} got {k!r} twice")
                values[k] = v
            missing = [p for p in params if p not in values and p not in self.defaults]
            if missing:
                raise InvalidArgument(f"{self.qualname}: missing argument {missing[0]!r}")
        try:
            return _encoder.encode(values)
        except (TypeError, OverflowError, msgspec.EncodeError) as exc:
            raise InvalidArgument(f"{self.qualname}: cannot encode the arguments: {exc}") from None

    def typed(self, value: Any, resolve: Resolve) -> Any:
        """A reply from another node as its declared return type (``returns``).
        A reply that does not fit the annotation is returned as the wire
        carried it, as a call on the same node would return it unchecked."""
        token = _resolver.set(resolve)
        try:
            return msgspec.convert(value, self.returns, dec_hook=_decode_ref)
        except (msgspec.ValidationError, ValueError, TypeError) as exc:
            log.warning("%s: its reply does not fit its return annotation: %s", self.qualname, exc)
            return value
        finally:
            _resolver.reset(token)

    def unpack(self, data: bytes, resolve: Resolve | None = None) -> tuple[Any, ...]:
        """The arguments, decoded with the method's types; ``InvalidArgument``
        naming the parameter when they do not fit. ``resolve`` turns the
        address of an ``ActorRef`` argument into a ref of the receiving node."""
        token = _resolver.set(resolve) if self.has_refs else None
        try:
            return msgspec.structs.astuple(self.decoder.decode(data))
        except msgspec.ValidationError as exc:
            raise InvalidArgument(f"{self.qualname}: {_explain(exc)}") from None
        except msgspec.DecodeError as exc:
            raise InvalidArgument(f"{self.qualname}: arguments are not msgpack: {exc}") from None
        finally:
            if token is not None:
                _resolver.reset(token)


def _explain(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    # msgspec says "Expected `int`, got `str` - at `$.amount`": name the parameter.
    head, sep, where = text.rpartition(" - at `$.")
    if sep:
        param = where.split("`")[0].split(".")[0].split("[")[0]
        return f"argument {param!r}: {head}"
    if "missing required field" in text:
        return f"missing argument {text.rsplit('`', 2)[-2]!r}"
    if "unknown field" in text:
        return f"no parameter {text.rsplit('`', 2)[-2]!r}"
    return text


Resolve = typing.Callable[[str, str, int], ActorRef]
#: How the decoder in progress turns an address into a ref (per call: the
#: receiving node's).
_resolver: ContextVar[Resolve | None] = ContextVar("trouper_rpc_resolver", default=None)


def _encode_ref(obj: Any) -> Any:
    if isinstance(obj, ActorRef):
        return (obj.node_id, obj.path, obj.uid)
    raise NotImplementedError(f"cannot encode {type(obj).__name__} values")


def _decode_ref(tp: Any, obj: Any) -> Any:
    if tp is ActorRef:
        resolve = _resolver.get()
        if (
            resolve is not None
            and isinstance(obj, list)
            and len(obj) == 3
            and isinstance(obj[0], str)
            and isinstance(obj[1], str)
            and type(obj[2]) is int
            and obj[2] >= 0
        ):
            return resolve(obj[0], obj[1], obj[2])
        raise ValueError("an ActorRef is [node, path, uid]")
    raise NotImplementedError(f"cannot decode {tp!r}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_ref)

#: The operations through which a coroutine can suspend (await, async for,
#: async with): a method with none of them can never reach a checkpoint.
_SUSPENDING = frozenset(
    {"GET_AWAITABLE", "SEND", "YIELD_VALUE", "BEFORE_ASYNC_WITH", "GET_AITER", "GET_ANEXT"}
)


def may_suspend(fn: Callable[..., Any]) -> bool:
    """False only for a coroutine function whose own code never awaits: it
    runs to its end at once, so no cancel scope can affect it (the server
    then spares the scope). True whenever that cannot be told."""
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__wrapped__", None) is not None:
        return True
    return any(ins.opname in _SUSPENDING for ins in dis.get_instructions(code))


def _mentions_ref(ann: Any, seen: set[int]) -> bool:
    """Can a value of type ``ann`` hold an ``ActorRef`` (then decoding it
    needs the receiving node)?"""
    if ann is ActorRef:
        return True
    if id(ann) in seen:
        return False
    seen.add(id(ann))
    if any(_mentions_ref(arg, seen) for arg in typing.get_args(ann)):
        return True
    if isinstance(ann, type) and issubclass(ann, msgspec.Struct):
        try:
            hints = typing.get_type_hints(ann)
        except Exception:  # unresolvable: assume it may
            return True
        return any(_mentions_ref(h, seen) for h in hints.values())
    return False


#: Types that decode as themselves inside containers.
_PLAIN = frozenset({str, int, float, bool, type(None), bytes, list, dict, Any})


def _loses_type(ann: Any) -> bool:
    """Does a value of type ``ann`` come off the wire as something else
    (a Struct or a ref inside a container as a dict or a list, a tuple as a list)?"""
    origin = typing.get_origin(ann)
    if origin is None:
        return ann not in _PLAIN
    if origin in (list, dict, typing.Union, types.UnionType):
        return any(_loses_type(arg) for arg in typing.get_args(ann))
    return True  # tuple, set, Literal...: converting them is exact anyway


def _typed_return(ann: Any) -> Any:
    """``ann`` if a remote reply must be converted to it, else None. A bare
    class needs nothing (a registered type is decoded as itself), nor does
    a type msgspec cannot convert to."""
    if typing.get_origin(ann) is None or not _loses_type(ann):
        return None
    try:
        msgspec.msgpack.Decoder(ann)
    except TypeError:
        return None
    return ann


def _register(ann: Any) -> None:
    if ann is None:
        return
    for arg in typing.get_args(ann):
        _register(arg)
    register_message_type(ann)


class ServiceInfo:
    """The rpc table of a service class, built once."""

    __slots__ = ("group", "methods", "middleware")

    def __init__(self, cls: type, group: str, middleware: Sequence[Any]) -> None:
        self.group = group
        self.middleware = tuple(middleware)
        self.methods: dict[str, Method] = {}
        seen: set[str] = set()
        for klass in cls.__mro__:
            for name, value in vars(klass).items():
                if name in seen:
                    continue
                seen.add(name)
                options = getattr(value, _RPC_MARK, None)
                if isinstance(options, RpcOptions):
                    self.methods[name] = Method(cls, name, value, options)


def service(group: str, *, middleware: Iterable[Any] = ()) -> Callable[[C], C]:
    """Make an actor class a service: its instances join the cluster-wide
    group ``group`` while they run, and its ``@rpc`` methods can be called
    through ``node.proxy(cls)``. ``middleware`` runs on the server, inside
    the node's own chain, for this service's calls."""
    if not isinstance(group, str) or not group:
        raise ConfigurationError(f"a service name is a non-empty string, not {group!r}")
    chain = tuple(middleware)

    def apply(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Actor)):
            raise ConfigurationError(f"@service decorates a trouper.Actor subclass, not {cls!r}")
        from ._chanserver import on_channel_call
        from ._measured import on_call_measured as on_call
        from ._server import on_stream_call

        type.__setattr__(cls, "__trouper_group__", group)
        type.__setattr__(cls, "__trouper_service_options__", (group, chain))
        type.__setattr__(cls, "_trouper_rpc_call", handler(on_call))
        type.__setattr__(cls, "_trouper_rpc_stream", handler(on_stream_call))
        type.__setattr__(cls, "_trouper_rpc_channel", handler(on_channel_call))
        if "_trouper_info" in cls.__dict__:
            type.__delattr__(cls, "_trouper_info")  # built before the handlers were added
        class_info(cls)
        return cls

    return apply


#: The tables built so far, by class (what every call looks up first).
_tables: dict[type, ServiceInfo] = {}


def service_info(cls: type) -> ServiceInfo:
    """The rpc table of ``cls`` (ConfigurationError if it is not a service)."""
    found = _tables.get(cls)
    if found is not None:
        return found
    info = cls.__dict__.get(_TABLE)
    if info is None:
        options = getattr(cls, "__trouper_service_options__", None)
        if options is None:
            raise ConfigurationError(
                f"{getattr(cls, '__qualname__', cls)!r} is not a @trouper.service class"
            )
        info = ServiceInfo(cls, *options)
        type.__setattr__(cls, _TABLE, info)
    _tables[cls] = info
    return typing.cast(ServiceInfo, info)
