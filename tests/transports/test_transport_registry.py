"""The package contract: public names, the scheme registry, error mapping."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio

import trouper.transports as transports
from trouper._errors import (
    ConfigurationError,
    ConnectionLost,
    HandshakeFailed,
    ProtocolError,
    TransportError,
)
from trouper.transports import (
    Address,
    TcpTransport,
    TlsTransport,
    Transport,
    get_transport,
    map_exceptions,
    register_transport,
)

PUBLIC = {
    "ALPN_PROTOCOL",
    "Address",
    "ConnectionPool",
    "Handler",
    "LaneStream",
    "MessageServer",
    "MessageSession",
    "SendTimeout",
    "ServerStatistics",
    "SessionStatistics",
    "QuicTransport",
    "TLSConfig",
    "TLSCredentials",
    "TcpTransport",
    "TlsTransport",
    "Transport",
    "WsTransport",
    "WssTransport",
    "broadcast",
    "channel_binding",
    "connect",
    "get_transport",
    "graceful_shutdown",
    "map_exceptions",
    "parse_address",
    "register_transport",
    "serve",
    "server_certificate",
}


def test_public_names_are_pinned() -> None:
    assert set(transports.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(transports, name) is not None


def test_modules_stay_small() -> None:
    package = Path(transports.__file__).parent
    for module in [*package.glob("*.py"), package.parent / "_certs.py"]:
        assert len(module.read_text().splitlines()) < 400, module.name


def test_tcp_and_tls_are_registered_by_default() -> None:
    assert isinstance(get_transport("tcp"), TcpTransport)
    assert isinstance(get_transport("TLS"), TlsTransport)
    assert isinstance(get_transport("tcp"), Transport)


def test_unknown_schemes_name_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"known schemes: .*quic, tcp, tls") as info:
        get_transport("carrier-pigeon")
    assert "'carrier-pigeon'" in str(info.value)


def test_quic_is_registered_with_its_extra() -> None:
    assert isinstance(get_transport("quic"), transports.QuicTransport)
    assert isinstance(get_transport("quic"), Transport)


def test_websocket_is_registered_with_its_extra() -> None:
    assert isinstance(get_transport("ws"), transports.WsTransport)
    assert isinstance(get_transport("wss"), transports.WssTransport)


def test_register_replaces_and_returns_the_previous_transport() -> None:
    class FakeTcp(TcpTransport):
        pass

    fake = FakeTcp()
    previous = register_transport(fake)
    try:
        assert isinstance(previous, TcpTransport)
        assert get_transport("tcp") is fake
    finally:
        assert previous is not None
        register_transport(previous)
    assert get_transport("tcp") is previous


def test_registering_a_non_transport_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a transport"):
        register_transport(object())  # type: ignore[arg-type]


def _raised_in(block_exc: BaseException, peer: str | Address = "tcp://h:1") -> BaseException:
    try:
        with map_exceptions(peer):
            raise block_exc
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("raised", "expected", "text"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), ConnectionLost, "reset"),
        (ConnectionRefusedError(111, "Connection refused"), ConnectionLost, "refused"),
        (
            _chained(
                OSError("all attempts failed"), ExceptionGroup("x", [ConnectionRefusedError()])
            ),
            ConnectionLost,
            "refused",
        ),
        (trio.BrokenResourceError(), ConnectionLost, "broke"),
        (trio.ClosedResourceError(), ConnectionLost, "closed"),
        (
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            HandshakeFailed,
            "TLS",
        ),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), HandshakeFailed, "TLS"),
        (
            _chained(trio.BrokenResourceError(), ssl.SSLError(1, "bad")),
            HandshakeFailed,
            "TLS session with tcp://h:1",
        ),
        (_chained(trio.BrokenResourceError(), ssl.SSLEOFError(8, "EOF")), ConnectionLost, "broke"),
    ],
)
def test_map_exceptions_translates_and_keeps_the_cause(
    raised: BaseException, expected: type[TransportError], text: str
) -> None:
    exc = _raised_in(raised)
    assert type(exc) is expected
    assert text in str(exc)
    assert exc.__cause__ is raised


def test_map_exceptions_names_the_peer_address() -> None:
    exc = _raised_in(OSError("boom"), Address("tls", "::1", 7))
    assert "tls://[::1]:7" in str(exc)


@pytest.mark.parametrize(
    "raised", [ValueError("ours"), ProtocolError("already trouper's"), KeyboardInterrupt()]
)
def test_map_exceptions_leaves_other_errors_alone(raised: BaseException) -> None:
    assert _raised_in(raised) is raised


async def test_map_exceptions_never_converts_cancellation() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        with map_exceptions("tcp://h:1"):
            await trio.sleep(1)
    assert scope.cancelled_caught
