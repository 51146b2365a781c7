"""The handshake, on a real stream: the I/O around ``trouper.protocols``.

Before a peer has proved it knows the cookie it is a stranger, and a
stranger gets little: frames of at most ``max_handshake_frame`` (64 KiB, as
Erlang caps its handshake), ``handshake_timeout`` to finish, and at most
``max_handshakes`` such connections at once. Frames are read one at a time,
so that the frames right behind the one that authenticates the peer are read
under the full ``max_frame_size``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .. import _errors as errors
from ..protocols import (
    AcceptorConnection,
    Envelope,
    FrameDecoder,
    FrameEncoder,
    InitiatorConnection,
)
from ..protocols import Connection as ProtoConnection
from ..transports import channel_binding

if TYPE_CHECKING:
    from ._config import RemoteConfig

Established = tuple[ProtoConnection, FrameDecoder, list[Envelope]]


async def handshake(
    stream: trio.abc.Stream,
    config: RemoteConfig,
    *,
    node_id: str,
    incarnation: int,
    initiator: bool,
    expected: str | None = None,
    admit: Callable[[str, int], None] | None = None,
    bind: bool = False,
) -> Established:
    """Authenticate both ends; returns the protocol state, the decoder (now at
    the full frame size) and any envelopes that arrived right behind.

    ``admit(peer_id, incarnation)`` (the acceptor's) runs once the peer has
    proved itself and before this side does; a ``HandshakeFailed`` from it
    refuses the peer with a Goodbye that says why.

    ``bind``: bind the proofs to the TLS channel under ``stream`` (its
    server certificate, see ``trouper.transports.channel_binding``), as
    ``TLSConfig.dev()`` needs: there no CA vouches for the peer, so the
    cookie handshake must not be relayable. A stream with no TLS (tcp://)
    has nothing to bind to and is not bound.
    """
    common: dict[str, Any] = {
        "node_id": node_id,
        "incarnation": incarnation,
        "cookie": config.cookie,
        "nonce": os.urandom(16),
        "max_frame": config.max_frame_size,
        "binding": (channel_binding(stream) or b"") if bind else b"",
    }
    proto: ProtoConnection = (
        InitiatorConnection(**common, expected_peer_id=expected)
        if initiator
        else AcceptorConnection(**common)
    )
    encoder = FrameEncoder(config.max_frame_size)
    decoder = FrameDecoder(config.max_handshake_frame)
    try:
        with trio.fail_after(config.handshake_timeout):
            first = proto.start()
            if first:
                await stream.send_all(encoder.encode(first))
            leftover: list[Envelope] = []
            while not proto.established:
                envelopes = decoder.feed(b"", max_frames=1) if decoder.pending else []
                if not envelopes:
                    data = await stream.receive_some(65536)
                    if not data:
                        raise errors.HandshakeFailed("the peer hung up during the handshake")
                    envelopes = decoder.feed(data, max_frames=1)
                for env in envelopes:
                    if proto.established:
                        leftover.append(env)  # data in the frame that authenticated it
                        continue
                    replies = proto.receive(env)
                    if replies and proto.established and admit is not None:
                        assert proto.peer_id is not None and proto.peer_incarnation is not None
                        admit(proto.peer_id, proto.peer_incarnation)
                    if replies:
                        await stream.send_all(encoder.encode(replies))
        decoder.max_frame_size = config.max_frame_size
        leftover += decoder.feed(b"")
    except trio.TooSlowError:
        raise errors.HandshakeFailed(f"no handshake within {config.handshake_timeout}s") from None
    except errors.HandshakeFailed as exc:
        await _refuse(stream, proto, encoder, exc.error_code, str(exc))
        raise
    except errors.RemoteProtocolError as exc:
        # Garbage: probably not a trouper node at all, so no Goodbye.
        raise errors.HandshakeFailed(f"protocol error during the handshake: {exc}") from exc
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        raise errors.HandshakeFailed(f"the link broke during the handshake: {exc}") from exc
    return proto, decoder, leftover


async def _refuse(
    stream: trio.abc.Stream, proto: ProtoConnection, encoder: FrameEncoder, code: str, why: str
) -> None:
    """Say why in a Goodbye (best effort, a second at most)."""
    with trio.move_on_after(1, shield=True):
        try:
            goodbye = proto.close(why[:200], code)
            await stream.send_all(encoder.encode([goodbye]))
        except (errors.TrouperError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
