"""tls:// over real sockets: echo, mutual TLS, rejections, garbage, timeouts."""

from __future__ import annotations

import logging
import ssl
import stat
from pathlib import Path

import pytest
import trio
from transport_helpers import Pki, echo, receive_exactly, receive_until_closed, serving

from trouper._certs import make_dev_certs
from trouper._errors import ConfigurationError, HandshakeFailed
from trouper.transports import (
    ALPN_PROTOCOL,
    Address,
    TcpTransport,
    TLSConfig,
    TlsTransport,
    map_exceptions,
    parse_address,
)

TLS = TlsTransport()


async def assert_echo(address: Address, tls: TLSConfig, payload: bytes = b"hello") -> None:
    stream = await TLS.connect(address, tls=tls)
    async with stream, trio.open_nursery() as nursery:
        assert isinstance(stream, trio.SSLStream)
        assert stream.selected_alpn_protocol() == ALPN_PROTOCOL
        nursery.start_soon(stream.send_all, payload)  # concurrently: the echo pushes back
        assert await receive_exactly(stream, len(payload)) == payload


async def assert_rejected(address: Address, tls: TLSConfig) -> HandshakeFailed:
    """The server refuses this client: at connect, or (TLS 1.3, where the
    client finishes its handshake before the server checks its certificate)
    on the first read. Either way the error is trouper's HandshakeFailed."""
    with pytest.raises(HandshakeFailed) as info:
        stream = await TLS.connect(address, tls=tls)
        async with stream:
            with map_exceptions(address):
                await stream.send_all(b"let me in")
                await stream.receive_some()
    return info.value


async def test_echo_over_mutual_tls(pki: Pki) -> None:
    seen_peer: list[object] = []

    async def handler(stream: trio.abc.Stream) -> None:
        assert isinstance(stream, trio.SSLStream)
        seen_peer.append(stream.getpeercert())  # the client's certificate is available
        await echo(stream)

    with trio.fail_after(10):
        async with serving(TLS, "tls://127.0.0.1:0", handler, pki.config("server")) as bound:
            assert bound.url == f"tls://127.0.0.1:{bound.port}" and bound.port > 0
            await assert_echo(bound, pki.config("client"), b"x" * 300_000)
    assert seen_peer and seen_peer[0]


async def test_server_without_ca_accepts_any_client(pki: Pki) -> None:
    server = pki.config("server", with_ca=False)
    with trio.fail_after(10):
        async with serving(TLS, "tls://localhost:0", echo, server) as bound:
            await assert_echo(bound, pki.config(None))  # hostname "localhost" checked


async def test_mutual_tls_rejects_a_client_without_a_certificate(pki: Pki) -> None:
    with trio.fail_after(10):
        async with serving(TLS, "tls://127.0.0.1:0", echo, pki.config("server")) as bound:
            error = await assert_rejected(bound, pki.config(None))
            assert "TLS" in str(error)
            await assert_echo(bound, pki.config("client"))  # still serving good clients


async def test_mutual_tls_rejects_a_client_from_another_ca(pki: Pki, other_pki: Pki) -> None:
    stranger = TLSConfig(certfile=other_pki.config("stranger").certfile, cafile=pki.cafile)
    with trio.fail_after(10):
        async with serving(TLS, "tls://127.0.0.1:0", echo, pki.config("server")) as bound:
            await assert_rejected(bound, stranger)
            await assert_echo(bound, pki.config("client"))


async def test_client_with_the_wrong_ca_rejects_the_server(pki: Pki, other_pki: Pki) -> None:
    with trio.fail_after(10):
        async with serving(TLS, "tls://127.0.0.1:0", echo, pki.config("server")) as bound:
            with pytest.raises(HandshakeFailed, match="certificate verify failed") as info:
                await TLS.connect(bound, tls=other_pki.config("client"))
            assert str(info.value).startswith(f"TLS handshake with {bound.url}")
            assert isinstance(info.value.__cause__, trio.BrokenResourceError)
            assert isinstance(info.value.__cause__.__cause__, ssl.SSLCertVerificationError)
            await assert_echo(bound, pki.config("client"))


async def test_hostname_is_checked_unless_disabled(pki: Pki) -> None:
    server = pki.config("server", hosts=("node-a.example",))
    with trio.fail_after(10):
        async with serving(TLS, "tls://127.0.0.1:0", echo, server) as bound:
            with pytest.raises(HandshakeFailed, match="certificate verify failed"):
                await TLS.connect(bound, tls=pki.config("client"))
            await assert_echo(bound, pki.config("client", check_hostname=False))


async def test_garbage_closes_only_that_connection(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(10), caplog.at_level(logging.WARNING, "trouper.transports"):
        async with serving(TLS, "tls://127.0.0.1:0", echo, pki.config("server")) as bound:
            plain = await trio.open_tcp_stream("127.0.0.1", bound.port)
            async with plain:
                await plain.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)))
                await receive_until_closed(plain)  # the server hangs up (maybe after an alert)
            await assert_echo(bound, pki.config("client"))
    assert any("TLS handshake" in r.getMessage() for r in caplog.records)


async def test_a_silent_peer_times_out_the_server_handshake(pki: Pki) -> None:
    fast = TlsTransport(handshake_timeout=0.2)
    with trio.fail_after(10):
        async with serving(fast, "tls://127.0.0.1:0", echo, pki.config("server")) as bound:
            silent = await trio.open_tcp_stream("127.0.0.1", bound.port)
            async with silent:
                assert await receive_until_closed(silent) == b""  # closed, never answered
            await assert_echo(bound, pki.config("client"))


async def test_client_handshake_times_out_on_a_silent_server(pki: Pki) -> None:
    async def mute(stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    fast = TlsTransport(handshake_timeout=0.2)
    with trio.fail_after(10):
        async with serving(TcpTransport(), "tcp://127.0.0.1:0", mute) as bound:
            address = parse_address(f"tls://127.0.0.1:{bound.port}")
            with pytest.raises(HandshakeFailed, match=r"no answer within 0\.2s"):
                await fast.connect(address, tls=pki.config("client"))


async def test_client_rejects_a_server_without_the_trouper_alpn(pki: Pki) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki.ca.issue_cert("127.0.0.1").configure_cert(server_ctx)  # no ALPN offered back

    async def plain_tls_server(stream: trio.abc.Stream) -> None:
        tls_stream = trio.SSLStream(stream, server_ctx, server_side=True)
        await tls_stream.do_handshake()
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with serving(TcpTransport(), "tcp://127.0.0.1:0", plain_tls_server) as bound:
            address = parse_address(f"tls://127.0.0.1:{bound.port}")
            with pytest.raises(HandshakeFailed, match="ALPN"):
                await TLS.connect(address, tls=pki.config("client"))


async def test_make_dev_certs_work_for_mutual_tls(tmp_path: Path) -> None:
    directory = make_dev_certs(tmp_path / "certs", names=("alpha", "beta"))
    for name in ("ca", "alpha", "beta"):
        assert (directory / f"{name}.pem").is_file()
        assert stat.S_IMODE((directory / f"{name}-key.pem").stat().st_mode) == 0o600
    with trio.fail_after(10):
        server = TLSConfig.from_dir(directory, "alpha")
        async with serving(TLS, "tls://localhost:0", echo, server) as bound:
            await assert_echo(bound, TLSConfig.from_dir(directory, "beta"))
            await assert_rejected(bound, TLSConfig(cafile=directory / "ca.pem"))


async def test_tls_configuration_errors(pki: Pki, tmp_path: Path) -> None:
    address = parse_address("tls://127.0.0.1:0")
    with pytest.raises(ConfigurationError, match="needs a TLSConfig"):
        await TLS.serve(address, echo, tls=None)
    with pytest.raises(ConfigurationError, match="needs a certificate"):
        await TLS.serve(address, echo, tls=TLSConfig(cafile=pki.cafile))
    with pytest.raises(ConfigurationError, match="cannot load TLS certificate"):
        await TLS.connect(address, tls=TLSConfig(certfile=tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="CA file"):
        TLSConfig(cafile=tmp_path / "missing.pem").client_context()
    with pytest.raises(ConfigurationError, match="trouper certs"):
        TLSConfig.from_dir(tmp_path / "nowhere", "node")
    with pytest.raises(ConfigurationError, match="handshake_timeout"):
        TlsTransport(handshake_timeout=0)
    with pytest.raises(ConfigurationError, match=r"below 1\.2"):
        TLSConfig(minimum_version=ssl.TLSVersion.TLSv1_1).client_context()


def test_contexts_are_modern_and_mutual_by_default(pki: Pki) -> None:
    config = pki.config("node")
    server, client = config.server_context(), config.client_context()
    assert server.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert client.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert server.verify_mode == ssl.CERT_REQUIRED
    assert client.verify_mode == ssl.CERT_REQUIRED and client.check_hostname
    optional = TLSConfig(config.certfile, cafile=pki.cafile, require_client_cert=False)
    assert optional.server_context().verify_mode == ssl.CERT_OPTIONAL
    assert not TLSConfig(config.certfile, check_hostname=False).client_context().check_hostname
