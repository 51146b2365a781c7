"""What the agent does for a peer: a remote spawn, a remote stop.

A spawn names a class by ``"module:QualName"``. Nothing is imported unless
the operator's ``allow_spawn`` list admits the name, and then only a class
that is an ``Actor`` defined in that very module (``_allow``). The arguments
are plain msgpack values; they go to the constructor as they are, never
mixed with spawn's own options, so a keyword called ``name`` is just an
argument. Every failure is raised here and becomes an error reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .. import _errors as errors
from ..runtime import cell_of
from ..supervisors import ChildSpec
from ._allow import resolve_actor_class

if TYPE_CHECKING:
    from ..protocols import Spawn, Stop
    from ..runtime import ActorRef
    from ._layer import Remoting


async def do_spawn(remoting: Remoting, env: Spawn) -> ActorRef:
    node = remoting.node
    config = remoting.config
    cls = resolve_actor_class(env.class_path, remoting.allow)
    try:
        args, kwargs = msgspec.msgpack.decode(env.args, type=tuple[list[Any], dict[str, Any]])
    except msgspec.DecodeError as exc:
        raise errors.SpawnRefused(f"bad arguments for {env.class_path}: {exc}") from exc
    if env.mailbox_size is not None and not 1 <= env.mailbox_size <= config.max_remote_mailbox:
        raise errors.SpawnRefused(
            f"mailbox_size {env.mailbox_size} is outside 1..{config.max_remote_mailbox} "
            "(max_remote_mailbox)"
        )
    try:
        spec = ChildSpec(cls, tuple(args), kwargs, env.name, "transient", 5.0, env.mailbox_size)
    except errors.ConfigurationError as exc:
        raise errors.SpawnRefused(f"cannot spawn {env.class_path}: {exc}") from exc
    try:
        return await node.spawn(spec)
    except errors.ConfigurationError as exc:
        raise errors.SpawnRefused(f"cannot spawn {env.class_path}: {exc}") from exc


async def do_stop(remoting: Remoting, env: Stop) -> None:
    node = remoting.node
    target = env.target
    cell = node.kernel.cell_at(target.path, target.uid) if target.node == node.id else None
    if cell is None:
        return  # stopped already, or never lived here: the stop has nothing to do
    ref = cell.ref
    if cell_of(ref) is None or not target.path.startswith("/user/"):
        raise errors.ConfigurationError(
            f"{target.path} cannot be stopped from another node (only actors under /user)"
        )
    if env.kill:
        await node.kill(ref)
    else:
        await node.stop(ref)
