"""Nodes over tls:// with mutual TLS: who may join, and what a refusal looks like.

A trustme CA issues one certificate for "127.0.0.1" per node, valid for both
server and client authentication (a node listens and dials with the same
certificate). A node whose certificate comes from another CA is refused by the
TLS layer; a node with the right certificate but the wrong cookie is refused by
trouper's own handshake. Either way the error is ``HandshakeFailed`` (the
transport maps every TLS verification failure to it; see
``trouper.transports.map_exceptions``), and the nodes already connected carry on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import trio
import trustme

import trouper
from trouper import TLSConfig

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from cluster_actors import ALLOW, Echo, Numbers, Ping, WhoAmI  # noqa: E402

COOKIE = b"cluster-tls-cookie"
LISTEN = "tls://127.0.0.1:0"


class Pki:
    """A trustme CA writing node certificates (key + chain in one PEM) to files."""

    def __init__(self, directory: Path, name: str) -> None:
        self.ca = trustme.CA(organization_name=name)
        self.dir = directory
        self.name = name
        self.cafile = directory / f"{name}-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.cafile))

    def node(self, node: str, *, trust: Pki | None = None) -> TLSConfig:
        """A certificate for 127.0.0.1 from this CA; trusting ``trust``'s CA
        (default: this one)."""
        certfile = self.dir / f"{self.name}-{node}.pem"
        cert = self.ca.issue_cert("127.0.0.1", common_name=node)
        cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
        os.chmod(certfile, 0o600)
        return TLSConfig(certfile=certfile, cafile=(trust or self).cafile)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, "cluster")


@pytest.fixture
def other_pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, "stranger")


async def test_two_nodes_over_mutual_tls(pki: Pki) -> None:
    with trio.fail_after(20):
        async with trouper.open_node("a", listen=LISTEN, cookie=COOKIE, tls=pki.node("a")) as a:
            (url,) = a.addresses
            assert url.startswith("tls://127.0.0.1:")
            async with trouper.open_node(
                "b", listen=LISTEN, seeds=a.addresses, cookie=COOKIE, tls=pki.node("b")
            ) as b:
                await a.wait_for_members(2, timeout=5)
                await b.spawn(Echo, 1, name="echo")
                ref = await a.lookup("echo", timeout=5)
                assert await ref.ask(Ping(41)) == 42
                async with ref.stream(Numbers(50), window=4) as it:
                    assert sum([i async for i in it]) == sum(range(50))
                # and the other way round, over the same link
                local = await a.spawn(Echo, 2, name="a-echo")
                assert await (await b.lookup("a-echo", timeout=5)).ask(Ping(1)) == 3
                assert local.node_id == "a"


async def test_a_certificate_from_another_ca_cannot_join(pki: Pki, other_pki: Pki) -> None:
    with trio.fail_after(30):
        async with (
            trouper.open_node("a", listen=LISTEN, cookie=COOKIE, tls=pki.node("a")) as a,
            trouper.open_node("b", seeds=a.addresses, cookie=COOKIE, tls=pki.node("b")) as b,
        ):
            await a.wait_for_members(2, timeout=5)
            await b.spawn(Echo, name="echo")
            ref = await a.lookup("echo", timeout=5)
            (url,) = a.addresses

            # Trusts a's CA, but its own certificate is from another CA:
            # a refuses it (under TLS 1.3, after the client's handshake).
            async with trouper.open_node(
                "mallory", cookie=COOKIE, tls=other_pki.node("mallory", trust=pki)
            ) as mallory:
                with pytest.raises(trouper.HandshakeFailed):
                    await mallory.connect(url, timeout=5)
                assert [m.node_id for m in mallory.members()] == ["mallory"]

            # Trusts only its own CA: it refuses a's certificate itself.
            async with trouper.open_node("eve", cookie=COOKIE, tls=other_pki.node("eve")) as eve:
                with pytest.raises(trouper.HandshakeFailed, match="certificate verify failed"):
                    await eve.connect(url, timeout=5)

            # No certificate at all.
            async with trouper.open_node(
                "anon", cookie=COOKIE, tls=TLSConfig(cafile=pki.cafile)
            ) as anon:
                with pytest.raises(trouper.HandshakeFailed):
                    await anon.connect(url, timeout=5)

            # The good pair never noticed.
            assert [m.node_id for m in a.members() if m.status == "up"] == ["a", "b"]
            assert await ref.ask(Ping(7)) == 7


async def test_a_wrong_cookie_over_tls_fails_the_handshake(pki: Pki) -> None:
    with trio.fail_after(20):
        async with trouper.open_node("a", listen=LISTEN, cookie=COOKIE, tls=pki.node("a")) as a:
            (url,) = a.addresses
            async with trouper.open_node("c", cookie=b"not-the-cookie", tls=pki.node("c")) as c:
                with pytest.raises(trouper.HandshakeFailed, match="cookie"):
                    await c.connect(url, timeout=5)
            assert [m.node_id for m in a.members()] == ["a"]
            # the right cookie still gets in
            async with trouper.open_node("d", cookie=COOKIE, tls=pki.node("d")) as d:
                assert await d.connect(url, timeout=5) == "a"
                await d.wait_for_members(2, timeout=5)


async def test_spawn_node_over_tls(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child gets the parent's TLS files (--tls-cert/--tls-key/--tls-ca)."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), existing) if p))
    with trio.fail_after(30):
        async with trouper.open_node(
            "parent", listen=LISTEN, cookie=COOKIE, tls=pki.node("parent")
        ) as a:
            handle = await a.spawn_node(name="tls-child", allow_spawn=ALLOW, listen=LISTEN)
            assert all(url.startswith("tls://") for url in handle.addresses)
            echo = await a.spawn(Echo, 5, on="tls-child", name="tls-echo")
            assert await echo.ask(Ping(1)) == 6
            assert await echo.ask(WhoAmI()) == "tls-child"
            assert await a.lookup("tls-echo", timeout=5) == echo
