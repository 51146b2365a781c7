"""remote_ask_quic: trouper's remote ask over quic:// against raw aioquic.

The trouper side is ``remote_ask`` with both nodes on ``quic://127.0.0.1:0`` (mutual TLS
with a development CA). The baseline is what a user of aioquic alone would write: its own
asyncio client and server (``aioquic.asyncio``), one stream, sequential ping-pong of the
same length-prefixed ``Ping`` frames, the server in a second process. Both use the same
certificates; connection set-up and ``WARMUP`` round trips are outside the timed region.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import msgspec

from benchmarks.cases._messages import Ping
from benchmarks.cases._net import HEADER, frame, peer
from benchmarks.cases._timing import clock, rate
from benchmarks.cases.remote import DEADLINE, WARMUP, remote_ask_over


def _certs() -> Path:
    from trouper._certs import make_dev_certs

    return make_dev_certs(Path(tempfile.mkdtemp(prefix="trouper-bench-certs-")))


def trouper_remote_ask_quic(n: int) -> float:
    import trouper

    return remote_ask_over(n, "quic://127.0.0.1:0", trouper.TLSConfig.from_dir(_certs()))


def aioquic_ask(n: int) -> float:
    """Sequential ping-pong on one stream with aioquic's own asyncio client."""
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration

    from benchmarks.cases._quic_peer import ALPN

    certs = _certs()
    decoder, encoder = msgspec.msgpack.Decoder(Ping), msgspec.msgpack.Encoder()

    async def round_trip(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int
    ) -> None:
        writer.write(frame(encoder.encode(Ping(i))))
        header = await reader.readexactly(HEADER.size)
        reply = decoder.decode(await reader.readexactly(HEADER.unpack(header)[0]))
        if reply.n != i:
            raise AssertionError(f"ping-pong {i} answered {reply!r}")

    async def main(port: int) -> float:
        config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN])
        config.load_verify_locations(str(certs / "ca.pem"))
        async with (
            asyncio.timeout(DEADLINE),
            connect("127.0.0.1", port, configuration=config) as client,
        ):
            reader, writer = await client.create_stream()
            for i in range(WARMUP):
                await round_trip(reader, writer, i)
            start = clock()
            for i in range(n):
                await round_trip(reader, writer, i)
            elapsed = clock() - start
        return rate(n, elapsed)

    with peer(str(certs), module="benchmarks.cases._quic_peer") as port:
        return asyncio.run(main(port))
