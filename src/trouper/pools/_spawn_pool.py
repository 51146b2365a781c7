"""``node.spawn_pool`` and ``ctx.spawn_pool``: options checked where the
mistake is made, then one ``WorkerPool`` actor spawned."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import ConfigurationError
from ..actors import Actor
from ..runtime import ActorRef
from ..supervisors import Strategy
from ._policy import PoolPolicy, PoolStatus
from ._routing import Routing, make_routing
from ._workers import GetPoolStatus, PoolSettings, WorkerPool

__all__ = ["pool_status", "spawn_pool"]


async def pool_status(ref: ActorRef, timeout: float | None = 5.0) -> PoolStatus:
    """The ``PoolStatus`` of the worker pool behind ``ref`` (local or remote)."""
    status = await ref.ask(GetPoolStatus(), timeout=timeout)
    if not isinstance(status, PoolStatus):
        raise ConfigurationError(f"{ref!r} is not a worker pool (it answered {status!r})")
    return status


def _policy(policy: object, lo: int | None, hi: int | None) -> PoolPolicy:
    if policy is None:
        return PoolPolicy(min=2 if lo is None else lo, max=64 if hi is None else hi)
    if not isinstance(policy, PoolPolicy):
        raise ConfigurationError(f"policy must be a trouper.PoolPolicy, not {policy!r}")
    if (lo is not None and lo != policy.min) or (hi is not None and hi != policy.max):
        raise ConfigurationError(
            f"min/max given twice: {lo}/{hi} and the policy's {policy.min}/{policy.max}"
        )
    return policy


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, not {value!r}")
    return value


async def spawn_pool(
    spawn: Callable[..., Awaitable[ActorRef]],
    rng: random.Random,
    cls: type[Actor],
    args: tuple[Any, ...],
    options: dict[str, Any],
) -> ActorRef:
    """What ``node.spawn_pool`` and ``ctx.spawn_pool`` do with their
    ``spawn``: the pool's options are taken out of ``options``, the rest go
    to every worker's constructor."""
    opts = dict(options)
    policy = _policy(opts.pop("policy", None), opts.pop("min", None), opts.pop("max", None))
    if policy.min < 1:
        raise ConfigurationError("a worker pool needs min >= 1 (it routes to its workers)")
    spec = opts.pop("routing", "round-robin")
    routing: Routing = spec if hasattr(spec, "pick") else make_routing(spec, rng)
    name = opts.pop("name", None)
    mailbox_size = opts.pop("mailbox_size", None)
    worker_mailbox_size = opts.pop("worker_mailbox_size", None)
    if worker_mailbox_size is not None:
        _count("worker_mailbox_size", worker_mailbox_size, 1)
    supervision = opts.pop("supervision", None)
    if supervision is not None and not isinstance(supervision, Strategy):
        raise ConfigurationError(f"supervision must be a Strategy, not {supervision!r}")
    if not (isinstance(cls, type) and issubclass(cls, Actor)):
        raise ConfigurationError(f"spawn_pool needs an Actor subclass, not {cls!r}")
    prefetch = _count("prefetch", opts.pop("prefetch", 1), 1)
    max_queued = _count("max_queued", opts.pop("max_queued", 1000), 1)
    settings = PoolSettings(
        worker=cls,
        args=args,
        kwargs=opts,
        policy=policy,
        routing=routing,
        label=name or f"{cls.__name__} pool",
        prefetch=prefetch,
        max_queued=max_queued,
        worker_mailbox_size=worker_mailbox_size,
        supervision=supervision,
    )
    return await spawn(WorkerPool, settings, name=name, mailbox_size=mailbox_size)
