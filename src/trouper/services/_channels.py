"""The entry point for service methods that take a two-way channel.

A channel handler is any ``@handler`` taking ``(self, msg, channel)``; the
runtime runs it in the actor's own nursery when someone opens a channel with
``ref.channel(msg)``. A service method declares its channel as a parameter
annotated ``trouper.Channel[Send, Receive]``: ``channel_parameter`` finds it
(so that the generated argument Struct leaves it out), and ``channel_method``
turns the method into such a handler, calling it with the decoded arguments
and the channel. The client opens it with ``ref.channel(Args(...))``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from .._errors import ConfigurationError
from ..actors._actor import _checkable
from ..runtime import Channel

__all__ = ["channel_method", "channel_parameter", "received_types"]


def channel_parameter(fn: Callable[..., Any]) -> str | None:
    """The name of ``fn``'s parameter annotated ``Channel[...]`` (or ``Channel``),
    None when it has none; ``ConfigurationError`` if it has more than one."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # NameError/TypeError from an unresolvable annotation
        raise ConfigurationError(
            f"{fn.__qualname__}: cannot resolve its annotations: {exc}"
        ) from exc
    found = [
        name
        for name in inspect.signature(fn).parameters
        if hints.get(name) is Channel or typing.get_origin(hints.get(name)) is Channel
    ]
    if len(found) > 1:
        raise ConfigurationError(f"{fn.__qualname__}: one channel parameter at most, got {found}")
    return found[0] if found else None


def received_types(hint: Any) -> tuple[type, ...] | None:
    """What a channel annotated ``hint`` (``Channel[S, R]``) receives, as
    ``isinstance`` checks it (``R``); None: anything."""
    args = typing.get_args(hint)
    accepted = _checkable(args[1]) if len(args) == 2 else None
    if accepted is not None and float in accepted:
        accepted = (*accepted, int)  # the numeric tower, as for a handler's channel
    return accepted


def channel_method(
    fn: Callable[..., Awaitable[None]],
) -> Callable[[Any, msgspec.Struct, Channel[Any, Any]], Awaitable[None]]:
    """A channel handler ``(self, args, channel)`` that calls the service
    method ``fn(self, **fields of args, <its channel parameter>=channel)``.
    Mark the result with ``@trouper.handler`` after annotating ``args`` with
    the method's generated argument Struct."""
    param = channel_parameter(fn)
    if param is None or not inspect.iscoroutinefunction(fn):
        raise ConfigurationError(
            f"{fn.__qualname__}: a channel method is an async def with a parameter "
            "annotated trouper.Channel[Send, Receive]"
        )

    async def handle(self: Any, args: msgspec.Struct, channel: Channel[Any, Any]) -> None:
        kwargs = {field: getattr(args, field) for field in args.__struct_fields__}
        kwargs[param] = channel
        await fn(self, **kwargs)

    handle.__name__ = fn.__name__
    handle.__qualname__ = fn.__qualname__
    return handle
