"""Tracing at the receiving end of a remote hop: a ``receive`` span per
``Tell`` and ``Ask`` (a child of the sender's span, named by the envelope's
``traceparent``), whose context the handler's span then descends from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..runtime import TraceNote

if TYPE_CHECKING:
    from ..protocols import Ask, ChannelOpen, StreamOpen, Tell
    from ._layer import Remoting
    from ._peer import Peer


def traceparent(remoting: Remoting) -> str | None:
    """What a message leaving now carries in its ``trace`` field."""
    tracing = remoting.tracing
    return None if tracing is None else tracing.traceparent()


def tell_note(peer: Peer, env: Tell) -> TraceNote | None:
    """The reply slot of a received tell: None unless this node traces."""
    tracing = peer.remoting.tracing
    if tracing is None:
        return None
    return TraceNote(tracing.receive(env.trace, env.target.path, peer.node_id, env.type_name))


def traced(peer: Peer, env: Ask | StreamOpen | ChannelOpen, reply: Any) -> Any:
    """``reply`` (a received ask's, stream's or channel's slot), carrying the context of
    its ``receive`` span when this node traces."""
    tracing = peer.remoting.tracing
    if tracing is not None:
        reply.trace = tracing.receive(env.trace, env.target.path, peer.node_id, env.type_name)
    return reply
