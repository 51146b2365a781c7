"""Requests one node makes of another's agent: spawn an actor, stop one.

A mixin of ``Remoting``. The arguments of a remote spawn travel as plain
msgpack values; one that cannot is named in the error, before anything is
sent. The receiving side is ``_agent``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import trio

from .. import _errors as errors
from ..protocols import Spawn, Stop
from ._wire import failure, wire_ref

if TYPE_CHECKING:
    from ..actors._actor import Actor
    from ..runtime import ActorRef, Node
    from ._config import RemoteConfig
    from ._peer import Peer

#: Room in a frame beyond a message's own bytes (the envelope, its refs).
ENVELOPE_ROOM = 1024


class Requests:
    """The spawn and stop half of ``Remoting`` (a mixin: it shares its state)."""

    node: Node
    config: RemoteConfig
    agent: ActorRef | None
    _encoder: msgspec.msgpack.Encoder

    def peer_of(self, node_id: str) -> Peer:
        raise NotImplementedError  # in Remoting

    def _own(self, ref: ActorRef) -> bool:
        raise NotImplementedError  # in Remoting

    async def stop(self, ref: ActorRef, *, kill: bool) -> None:
        if self._own(ref):
            await trio.lowlevel.checkpoint()
            return  # no such actor: it is stopped already
        peer = self.peer_of(ref.node_id)
        target = wire_ref(ref)
        await peer.ask(lambda i: Stop(i, target, kill))

    async def spawn(
        self,
        node_id: str,
        cls: type[Actor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None,
        mailbox_size: int | None,
        timeout: float,
    ) -> ActorRef:
        peer = self.peer_of(node_id)
        class_path = f"{cls.__module__}:{cls.__qualname__}"
        encoded = self._encode_arguments(cls, node_id, args, kwargs, peer.max_frame)
        with trio.move_on_after(timeout):
            ref: ActorRef = await peer.ask(
                lambda i: Spawn(i, class_path, encoded, name, mailbox_size)
            )
            return ref
        raise errors.AskTimeout(f"node {node_id} did not answer a spawn of {class_path}")

    def _encode_arguments(
        self,
        cls: type,
        node_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        frame: int,
    ) -> msgspec.Raw:
        """``[args, kwargs]`` as msgpack; an argument that cannot travel is a
        ``ConfigurationError`` naming it (never a bare encoder error)."""
        named = [(f"argument {i}", a) for i, a in enumerate(args)]
        named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
        for label, value in named:
            try:
                self._encoder.encode(value)
            except (NotImplementedError, TypeError, ValueError, OverflowError) as exc:
                raise errors.ConfigurationError(
                    f"{label} of {cls.__qualname__} cannot be sent to node {node_id}: {exc}"
                ) from None
        payload = self._encoder.encode([list(args), kwargs])
        if len(payload) > frame - ENVELOPE_ROOM:
            raise errors.FrameTooLarge(
                f"the arguments of {cls.__qualname__} take {len(payload)} bytes, over "
                f"the frame limit ({frame})"
            )
        return msgspec.Raw(payload)

    def agent_request(self, peer: Peer, env: Spawn | Stop) -> None:
        """A peer asks for a spawn or a stop: the agent does it, supervised."""
        from ._actors import AgentRequest

        if peer.requests >= self.config.max_peer_requests or self.agent is None:
            self._refuse(peer, env.id, "too many requests in progress; try again")
            return
        peer.requests += 1
        try:
            self.agent.tell_nowait(AgentRequest(peer, env))
        except errors.TrouperError:
            peer.requests -= 1
            self._refuse(peer, env.id, "the agent is busy; try again")

    def _refuse(self, peer: Peer, id: int, why: str) -> None:
        exc = errors.MailboxFull(f"node {self.node.id}: {why}")
        peer.send_quiet(failure(id, exc, self.node.id, "/system/remote/agent", tracebacks=False))
