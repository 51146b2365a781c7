"""What a call's answer means to its caller: a failure from another node
unboxed into the error it stands for, and ``ServerStream``, what a proxy's
stream method returns."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from .. import _errors as errors
from .._errors import ConfigurationError
from ._messages import LocalFailure, RpcFailure
from ._rpc import Method

if TYPE_CHECKING:
    from ..runtime._streams import StreamReader
    from ._proxy import ServiceProxy

_CALL_ERRORS: dict[str, type[errors.TrouperError]] = {
    cls.error_code: cls
    for cls in (
        errors.InvalidArgument,
        errors.CircuitOpen,
        errors.Unauthorized,
        errors.RateLimited,
        errors.AskTimeout,
        errors.ActorDead,
        errors.ActorNotFound,
        errors.UnhandledMessage,
        errors.NodeDown,
        errors.ConnectionLost,
        errors.ConfigurationError,
        errors.MailboxFull,
    )
}


def unbox(f: RpcFailure) -> BaseException:
    """The error a failure from another node stands for: trouper's own
    errors as themselves (with their retry delay), anything else boxed."""
    own = _CALL_ERRORS.get(f.code)
    if own is not None and f.type_name.startswith("trouper."):
        exc = own(f"{f.message} (on {f.node})")
        if f.retry_delay is not None:
            exc.retry_delay = f.retry_delay
        return exc
    return errors.RemoteError(f.type_name, f.message, "", f.node, f.path)


class ServerStream:
    """A server stream: ``async with proxy.m(...) as items: async for x in
    items``, or ``async for x in proxy.m(...)`` directly (then the stream is
    closed when it ends or fails; prefer ``async with`` to leave early)."""

    def __init__(self, proxy: ServiceProxy, method: Method, payload: bytes) -> None:
        self._proxy = proxy
        self._method = method
        self._payload = payload
        self._cm: AbstractAsyncContextManager[StreamReader] | None = None
        self._reader: StreamReader | None = None
        self._auto = False

    async def __aenter__(self) -> ServerStream:
        if self._cm is not None:
            raise ConfigurationError("a server stream can be opened once")
        self._cm = self._proxy._open_stream(self._method, self._payload)
        self._reader = await self._cm.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        cm, self._cm = self._cm, None
        self._reader = None
        if cm is None:
            return None
        return await cm.__aexit__(*exc)

    def __aiter__(self) -> ServerStream:
        return self

    async def __anext__(self) -> Any:
        if self._reader is None:
            if self._auto or self._cm is not None:
                raise StopAsyncIteration
            self._auto = True
            await self.__aenter__()
        assert self._reader is not None
        try:
            item = await self._reader.__anext__()
        except StopAsyncIteration:
            if self._auto:
                await self.__aexit__(None, None, None)
            raise
        except BaseException as exc:
            if self._auto:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        kind = type(item)
        if kind is LocalFailure or kind is RpcFailure:
            error = item.exc if kind is LocalFailure else unbox(item)
            if self._auto:
                await self.__aexit__(None, None, None)
            raise error
        return item
