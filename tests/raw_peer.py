"""A raw TCP client that does trouper's real handshake, to misbehave after
(the tests that play a hostile but authenticated peer share it)."""

from __future__ import annotations

import os

import trio

from trouper.protocols import FrameDecoder, FrameEncoder, InitiatorConnection


async def dial_handshaken(
    url: str, node_id: str, cookie: bytes, incarnation: int = 1
) -> tuple[trio.SocketStream, FrameDecoder]:
    """Dial ``url`` (``tcp://host:port``) and authenticate as ``node_id``;
    return the stream and the decoder holding whatever followed the handshake."""
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    proto = InitiatorConnection(
        node_id=node_id, incarnation=incarnation, cookie=cookie, nonce=os.urandom(16)
    )
    encoder, decoder = FrameEncoder(), FrameDecoder()
    await stream.send_all(encoder.encode(proto.start()))
    while not proto.established:
        data = await stream.receive_some(65536)
        assert data, f"the node hung up on {node_id}'s handshake"
        for env in decoder.feed(data):
            if not proto.established and (replies := proto.receive(env)):
                await stream.send_all(encoder.encode(replies))
    return stream, decoder
