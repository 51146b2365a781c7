"""The machinery of the transport conformance suite: one ``Net`` per scheme.

A ``Net`` knows how nodes of one transport are configured: the listen URL
(``<scheme>://127.0.0.1:0``, plus a path for WebSocket), the node's
``TLSConfig`` for the TLS-based schemes (tls, quic, wss: mutual TLS with
certificates from ``trouper certs``' code), and how to open a raw stream over
exactly that transport (TLS included) to misbehave on.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

import trouper
from trouper.protocols import Envelope, FrameDecoder, FrameEncoder, InitiatorConnection
from trouper.transports import TLSConfig, get_transport, parse_address

SCHEMES = ("tcp", "tls", "quic", "ws", "wss")
#: The schemes whose nodes take the node's ``TLSConfig`` (quic requires it).
TLS_SCHEMES = frozenset({"tls", "quic", "wss"})
#: WebSocket listeners serve one path.
WS_PATH = "/trouper"
#: Certificates made once per session (``trouper._certs.make_dev_certs``).
CERT_NAMES = ("n0", "n1", "n2", "raw")

COOKIE = b"conformance-cookie"
#: Fast failure detection, for the tests that wait for it (as in test_remote).
FAST: dict[str, Any] = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 2.0}


def unavailable(scheme: str) -> str | None:
    """Why ``scheme`` cannot be tested in this installation, or None."""
    try:
        get_transport(scheme)
    except trouper.ConfigurationError as exc:
        return f"{scheme}:// is not registered in trouper.transports yet: {exc}"
    return None


def listen_url(scheme: str) -> str:
    path = WS_PATH if scheme in ("ws", "wss") else ""
    return f"{scheme}://127.0.0.1:0{path}"


@dataclass(frozen=True)
class Net:
    """Nodes and raw connections over one transport."""

    scheme: str
    certs: Path

    @property
    def listen(self) -> str:
        return listen_url(self.scheme)

    def tls(self, name: str) -> TLSConfig | None:
        """The TLS config of node ``name`` (one of ``CERT_NAMES``), if the scheme uses TLS."""
        if self.scheme not in TLS_SCHEMES:
            return None
        return TLSConfig.from_dir(self.certs, name)

    def open_node(
        self, name: str, *, seeds: tuple[str, ...] = (), fast: bool = False, **options: Any
    ) -> AbstractAsyncContextManager[trouper.Node]:
        """A node listening on this transport (``fast``: quick failure detection)."""
        timing = FAST if fast else {}
        return trouper.open_node(
            name,
            listen=self.listen,
            seeds=seeds,
            cookie=COOKIE,
            tls=self.tls(name),
            **{**timing, **options},
        )

    @asynccontextmanager
    async def cluster(
        self, n: int = 2, *, fast: bool = False, **options: Any
    ) -> AsyncIterator[list[trouper.Node]]:
        """Nodes ``n0 .. n{n-1}``, each seeded with the first, all up with each other."""
        async with AsyncExitStack() as stack:
            nodes: list[trouper.Node] = []
            for i in range(n):
                seeds = nodes[0].addresses if nodes else ()
                node = await stack.enter_async_context(
                    self.open_node(f"n{i}", seeds=seeds, fast=fast, **options)
                )
                assert node.addresses, node
                assert all(url.startswith(f"{self.scheme}://") for url in node.addresses)
                nodes.append(node)
            for node in nodes:
                await node.wait_for_members(n, timeout=10)
            yield nodes

    async def connect_raw(self, url: str) -> trio.abc.Stream:
        """A stream to ``url`` over this very transport (TLS handshake done)."""
        address = parse_address(url)
        assert address.scheme == self.scheme
        return await get_transport(self.scheme).connect(address, tls=self.tls("raw"))


async def handshake(
    stream: trio.abc.Stream, node_id: str, rng: random.Random, cookie: bytes = COOKIE
) -> FrameDecoder:
    """Do trouper's handshake as ``node_id`` on a raw stream (to misbehave after)."""
    proto = InitiatorConnection(
        node_id=node_id, incarnation=1, cookie=cookie, nonce=rng.randbytes(16)
    )
    encoder, decoder = FrameEncoder(), FrameDecoder()
    await stream.send_all(encoder.encode(proto.start()))
    while not proto.established:
        data = await stream.receive_some(65536)
        assert data, f"the node hung up on {node_id}'s handshake"
        for env in decoder.feed(data):
            if not proto.established:
                replies = proto.receive(env)
                if replies:
                    await stream.send_all(encoder.encode(replies))
    return decoder


async def closed_by_peer(stream: trio.abc.Stream, decoder: FrameDecoder) -> list[Envelope]:
    """Read until the other end closes the stream; return the envelopes it sent.

    EOF and a broken stream both count as closed (a transport may report a
    peer's close either way); the caller bounds the wait with ``fail_after``.
    """
    said: list[Envelope] = []
    while True:
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trouper.TransportError):
            return said
        if not data:
            return said
        if not decoder.poisoned:
            try:
                said.extend(decoder.feed(data))
            except trouper.ProtocolError:
                pass  # not frames (an HTTP error page, say): only the close matters


def member_status(node: trouper.Node, node_id: str) -> tuple[str, int] | None:
    for m in node.members():
        if m.node_id == node_id:
            return m.status, m.incarnation
    return None


async def wait_status(node: trouper.Node, node_id: str, status: str) -> None:
    """Poll until ``node`` sees ``node_id`` as ``status`` (bound it with fail_after)."""
    while True:
        if (member_status(node, node_id) or ("", 0))[0] == status:
            return
        await trio.sleep(0.01)
