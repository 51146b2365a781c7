"""parse_address: every accepted form, and clear errors for the rest."""

from __future__ import annotations

import pytest

from trouper._errors import ConfigurationError
from trouper.transports import Address, parse_address


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("tcp://127.0.0.1:9000", Address("tcp", "127.0.0.1", 9000, "")),
        ("tls://example.com:443", Address("tls", "example.com", 443, "")),
        ("TCP://Example.COM:1", Address("tcp", "example.com", 1, "")),
        ("quic://node-1.local:4433", Address("quic", "node-1.local", 4433, "")),
        ("tcp://[::1]:0", Address("tcp", "::1", 0, "")),
        ("tcp://0.0.0.0:0", Address("tcp", "0.0.0.0", 0, "")),
        ("tls://[2001:db8::1]:65535", Address("tls", "2001:db8::1", 65535, "")),
        ("tcp://localhost:9000/", Address("tcp", "localhost", 9000, "")),
        ("ws://host:8080/trouper", Address("ws", "host", 8080, "/trouper")),
        ("wss://host:8443/a/b", Address("wss", "host", 8443, "/a/b")),
        ("ws://host:80", Address("ws", "host", 80, "/")),
        ("wss://host/trouper", Address("wss", "host", 443, "/trouper")),
        ("ws://[::1]/x", Address("ws", "::1", 80, "/x")),
    ],
)
def test_good_addresses(url: str, expected: Address) -> None:
    address = parse_address(url)
    assert address == expected
    assert parse_address(address.url) == address  # url is canonical and round-trips


def test_url_brackets_ipv6_and_keeps_ws_path() -> None:
    assert parse_address("tcp://[::1]:5").url == "tcp://[::1]:5"
    assert parse_address("wss://h:1/p").url == "wss://h:1/p"
    assert str(parse_address("tcp://h:1")) == "tcp://h:1"
    assert parse_address("tcp://h:0").with_port(41000).url == "tcp://h:41000"


def test_address_is_frozen_and_hashable() -> None:
    address = parse_address("tcp://h:1")
    with pytest.raises(AttributeError):
        address.port = 2  # type: ignore[misc]
    assert {address, parse_address("tcp://h:1")} == {address}


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "missing scheme"),
        ("127.0.0.1:9000", "scheme"),
        ("http://host:80", "unknown scheme 'http'"),
        ("udp://host:1", "unknown scheme"),
        ("tcp://host", "missing port"),
        ("tcp://host:", "missing port"),
        ("tcp://:9000", "missing host"),
        ("tcp://host:99999", "out of range"),
        ("tcp://host:-1", "port"),
        ("tcp://host:http", "port"),
        ("tcp://::1:9000", "port"),
        ("tcp://[::1:9000", "IPv6"),
        ("tcp://[zz::1]:9000", "IPv6 address"),
        ("tcp://host:1/path", "path is only allowed"),
        ("tcp://user:pw@host:1", "user info"),
        ("tcp://host:1?x=1", "query"),
        ("ws://host:1/p#frag", "fragment"),
        ("tcp://bad_host!:1", "not a valid host"),
        ("tcp://-bad:1", "not a valid host"),
        ("tcp://ho st:1", "whitespace"),
        (" tcp://host:1", "whitespace"),
    ],
)
def test_bad_addresses(url: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid transport address") as info:
        parse_address(url)
    assert why in str(info.value)


def test_non_string_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="expected a str"):
        parse_address(9000)  # type: ignore[arg-type]
