"""The far end of the raw QUIC baseline: ``python -m benchmarks.cases._quic_peer CERTDIR``.

An aioquic server on its own asyncio I/O layer (``aioquic.asyncio.serve``), with the
certificates in CERTDIR (``trouper certs`` layout): every stream it accepts echoes
length-prefixed ``Ping`` frames, decoded and re-encoded. It prints its UDP port, then
serves until its stdin closes (see ``benchmarks.cases._net.peer``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
from aioquic.asyncio import serve
from aioquic.quic.configuration import QuicConfiguration

from benchmarks.cases._messages import Ping
from benchmarks.cases._net import HEADER, frame
from benchmarks.cases._net_peer import DEADLINE, _announce, _exit_when_stdin_closes

ALPN = "bench-echo"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()
    while True:
        try:
            header = await reader.readexactly(HEADER.size)
        except asyncio.IncompleteReadError:
            return
        body = await reader.readexactly(HEADER.unpack(header)[0])
        writer.write(frame(encoder.encode(decoder.decode(body))))


async def _serve(certs: Path) -> None:
    config = QuicConfiguration(is_client=False, alpn_protocols=[ALPN])
    config.load_cert_chain(certs / "node.pem", certs / "node-key.pem")
    server = await serve(
        "127.0.0.1",
        0,
        configuration=config,
        stream_handler=lambda r, w: asyncio.ensure_future(_echo(r, w)),
    )
    _announce(server._transport.get_extra_info("sockname")[1])  # type: ignore[union-attr]
    await asyncio.sleep(DEADLINE)


if __name__ == "__main__":
    _exit_when_stdin_closes()
    asyncio.run(_serve(Path(sys.argv[1])))
