"""``TLSConfig.dev()``: tls:// and quic:// with no certificate files.

Each node makes an ephemeral self-signed certificate; nobody verifies it
against a CA, so the cookie handshake authenticates peers, bound to the TLS
channel by the hash of the server's certificate as each end saw it. The
man-in-the-middle test puts a relay between two nodes that terminates TLS
on both sides with its own certificate and forwards every byte: the relay
works (a control run over plain tcp:// proves it), but the bound handshake
fails.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

import trouper
from trouper import TLSConfig
from trouper.transports import (
    TLSCredentials,
    channel_binding,
    get_transport,
    parse_address,
    server_certificate,
)

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from cluster_actors import Echo, Numbers, Ping  # noqa: E402

COOKIE = b"dev-mode-cookie"
SCHEMES = ["tls", "quic"]


def listen(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:0" + ("/trouper" if scheme == "wss" else "")


@pytest.mark.parametrize("scheme", [*SCHEMES, "wss"])
async def test_two_dev_nodes_talk_with_no_certificate_files(scheme: str) -> None:
    with trio.fail_after(30):
        dev = TLSConfig.dev()
        assert dev.certfile is None and dev.cafile is None
        async with (
            trouper.open_node("a", listen=listen(scheme), cookie=COOKIE, tls=dev) as a,
            trouper.open_node(
                "b", listen=listen(scheme), seeds=a.addresses, cookie=COOKIE, tls=dev
            ) as b,
        ):
            await a.wait_for_members(2, timeout=10)
            await b.spawn(Echo, 1, name="echo")
            ref = await a.lookup("echo", timeout=10)
            assert await ref.ask(Ping(41)) == 42
            async with ref.stream(Numbers(100), window=8) as items:
                assert [i async for i in items] == list(range(100))


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_both_ends_see_the_same_binding_and_nodes_differ(scheme: str) -> None:
    """The binding is the server's certificate as each end saw it: equal at
    both ends of one channel, and every dev node has its own certificate."""
    server_side: list[bytes | None] = []
    accepted = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            transport = get_transport(scheme)
            server_tls = TLSCredentials(TLSConfig.dev())

            async def handler(stream: trio.abc.Stream) -> None:
                server_side.append(channel_binding(stream))
                accepted.set()
                await stream.receive_some(1)

            url = await nursery.start(
                lambda task_status: transport.serve(
                    parse_address(listen(scheme)),
                    handler,
                    tls=server_tls,
                    task_status=task_status,
                )
            )
            client_tls = TLSCredentials(TLSConfig.dev())
            stream = await transport.connect(parse_address(url), tls=client_tls, nursery=nursery)
            await stream.send_all(b"x")  # QUIC: the server sees the stream once data flows
            await accepted.wait()
            client_side = channel_binding(stream)
            assert client_side is not None and server_side == [client_side]
            assert server_certificate(stream) == server_tls.material.identity.der  # type: ignore[union-attr]
            assert server_tls.material.fingerprint != client_tls.material.fingerprint
            await stream.aclose()
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_wrong_cookie_fails_in_dev_mode(scheme: str) -> None:
    with trio.fail_after(20):
        dev = TLSConfig.dev()
        async with trouper.open_node("a", listen=listen(scheme), cookie=COOKIE, tls=dev) as a:
            async with trouper.open_node("intruder", cookie=b"not-the-cookie", tls=dev) as bad:
                with pytest.raises(trouper.HandshakeFailed, match="cookie challenge"):
                    await bad.connect(a.addresses[0], timeout=10)
                assert [m.node_id for m in bad.members()] == ["intruder"]
            assert [m.node_id for m in a.members()] == ["a"]


class Relay:
    def __init__(self) -> None:
        self.url = ""
        #: connections relayed, and bytes copied "up" (to the target) and "down".
        self.counts: Counter[str] = Counter()


@asynccontextmanager
async def relay(scheme: str, target: str, tls: TLSCredentials | None) -> AsyncIterator[Relay]:
    """Listen on ``scheme``, and for each connection dial ``target`` and copy
    bytes both ways, terminating TLS on both sides with ``tls`` (the relay's
    own certificate)."""
    result = Relay()
    counts = result.counts
    transport = get_transport(scheme)

    async def copy(src: trio.abc.Stream, dst: trio.abc.Stream, key: str) -> None:
        try:
            while data := await src.receive_some(65536):
                counts[key] += len(data)
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trouper.TrouperError):
            pass

    async def handler(client: trio.abc.Stream) -> None:
        async with trio.open_nursery() as pumps:
            upstream = await transport.connect(parse_address(target), tls=tls, nursery=pumps)
            counts["connections"] += 1

            async def one_way(src: trio.abc.Stream, dst: trio.abc.Stream, key: str) -> None:
                await copy(src, dst, key)
                pumps.cancel_scope.cancel()  # one side ended: so does the relayed connection

            pumps.start_soon(one_way, client, upstream, "up")
            pumps.start_soon(one_way, upstream, client, "down")
        await trio.aclose_forcefully(upstream)

    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            lambda task_status: transport.serve(
                parse_address(f"{scheme}://127.0.0.1:0"), handler, tls=tls, task_status=task_status
            )
        )
        result.url = url
        yield result
        nursery.cancel_scope.cancel()


async def test_the_relay_relays_when_nothing_is_bound() -> None:
    """The control: over plain tcp:// the same relay carries a handshake."""
    with trio.fail_after(20):
        async with (
            trouper.open_node("a", listen="tcp://127.0.0.1:0", cookie=COOKIE) as a,
            relay("tcp", a.addresses[0], None) as middle,
        ):
            async with trouper.open_node("b", cookie=COOKIE) as b:
                assert await b.connect(middle.url, timeout=10) == "a"
                await a.spawn(Echo, 1, name="echo")
                ref = await b.lookup("echo", timeout=10)
                assert await ref.ask(Ping(1)) == 2
            assert middle.counts["up"] > 0 and middle.counts["down"] > 0


@pytest.mark.parametrize("scheme", [*SCHEMES, "wss"])
async def test_a_man_in_the_middle_fails_the_bound_handshake(scheme: str) -> None:
    with trio.fail_after(30):
        dev = TLSConfig.dev()
        async with trouper.open_node("a", listen=listen(scheme), cookie=COOKIE, tls=dev) as a:
            # The relay knows nothing but what it relays; its TLS sessions
            # with each end use its own ephemeral certificate.
            mallory = TLSCredentials(TLSConfig.dev())
            async with relay(scheme, a.addresses[0], mallory) as middle:
                async with trouper.open_node("b", cookie=COOKIE, tls=dev) as b:
                    with pytest.raises(trouper.HandshakeFailed, match="cookie challenge"):
                        await b.connect(middle.url, timeout=10)
                    assert [m.node_id for m in b.members()] == ["b"]
                # The handshake went through the relay both ways (Hello,
                # Challenge, Welcome): it failed on the bound proof, not on TLS.
                assert middle.counts["connections"] >= 1
                assert middle.counts["up"] > 0 and middle.counts["down"] > 0
            assert [m.node_id for m in a.members()] == ["a"]
            # Direct, the same two nodes get along.
            async with trouper.open_node("b", cookie=COOKIE, tls=dev) as b:
                assert await b.connect(a.addresses[0], timeout=10) == "a"


async def test_spawn_node_passes_dev_mode_to_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """``spawn_node`` starts ``trouper node --tls-dev``: the child makes its
    own certificate and joins over tls:// through the bound handshake."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), *sys.path]))
    with trio.fail_after(60):
        async with trouper.open_node(
            "parent", listen=listen("tls"), cookie=COOKIE, tls=TLSConfig.dev()
        ) as parent:
            child = await parent.spawn_node(name="child", listen=listen("tls"))
            assert child.addresses[0].startswith("tls://")
            assert {m.node_id for m in parent.members() if m.status == "up"} == {"parent", "child"}
            await child.stop()


def test_dev_config_takes_no_files(tmp_path: Path) -> None:
    with pytest.raises(trouper.ConfigurationError, match="takes no certfile"):
        TLSConfig(certfile=tmp_path / "x.pem", development=True)
    assert TLSConfig.dev() == TLSConfig.dev()  # a value: the certificate is made per node
