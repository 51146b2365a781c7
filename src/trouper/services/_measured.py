"""The server side of ``rpc.server.call.duration``: ``on_call``, timed."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from .._errors import RateLimited
from ..actors import Actor
from ._messages import Call, LocalFailure, RpcFailure
from ._rpc import service_info
from ._server import on_call
from ._state import services_of


async def on_call_measured(self: Actor, msg: Call) -> Any:
    """The handler of a ``Call`` (``_server.on_call``), timed: failures are
    values there, so every call that ends is recorded (a cancelled one is not)."""
    started = perf_counter()
    result = await on_call(self, msg)
    elapsed = perf_counter() - started
    info = service_info(type(self))
    if msg.method in info.methods:
        metrics = services_of(self.ctx.node).metrics
        metrics.observe(metrics.server, (info.group, msg.method), elapsed)
        kind = type(result)
        if (kind is RpcFailure and result.code == RateLimited.error_code) or (
            kind is LocalFailure and isinstance(result.exc, RateLimited)
        ):
            metrics.limited(info.group)
    return result
