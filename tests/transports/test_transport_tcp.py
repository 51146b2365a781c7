"""tcp:// over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import socket

import pytest
import trio
from transport_helpers import echo, receive_exactly, receive_until_closed, serving

from trouper._errors import ConfigurationError, ConnectionLost
from trouper.transports import TcpTransport, get_transport, parse_address

TCP = TcpTransport()


async def test_echo_both_ways_on_a_real_port() -> None:
    with trio.fail_after(10):
        async with serving(TCP, "tcp://127.0.0.1:0", echo) as bound:
            assert bound.scheme == "tcp" and bound.host == "127.0.0.1"
            assert bound.port > 0
            assert bound.url == f"tcp://127.0.0.1:{bound.port}"
            stream = await TCP.connect(bound, tls=None)
            async with stream:
                await stream.send_all(b"ping")
                assert await receive_exactly(stream, 4) == b"ping"
                # A payload larger than the socket buffers forces both
                # directions to make progress at the same time.
                payload = bytes(range(256)) * 8192
                received = b""

                async def reader() -> None:
                    nonlocal received
                    received = await receive_exactly(stream, len(payload))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    await stream.send_all(payload)
                assert received == payload


async def test_registry_tcp_transport_works_too() -> None:
    with trio.fail_after(10):
        tcp = get_transport("tcp")
        async with (
            serving(tcp, "tcp://127.0.0.1:0", echo) as bound,
            await tcp.connect(bound, tls=None) as stream,
        ):
            await stream.send_all(b"x")
            assert await receive_exactly(stream, 1) == b"x"


async def test_both_sides_set_tcp_nodelay() -> None:
    seen: list[int] = []

    async def handler(stream: trio.abc.Stream) -> None:
        assert isinstance(stream, trio.SocketStream)
        seen.append(stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    with trio.fail_after(10):
        async with serving(TCP, "tcp://127.0.0.1:0", handler) as bound:
            stream = await TCP.connect(bound, tls=None)
            assert isinstance(stream, trio.SocketStream)
            assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await receive_until_closed(stream)  # the server closes once the handler returns
            await stream.aclose()
    assert seen and seen[0]


async def test_a_failing_handler_does_not_stop_the_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def handler(stream: trio.abc.Stream) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("handler bug")
        await echo(stream)

    with trio.fail_after(10), caplog.at_level(logging.ERROR, "trouper.transports"):
        async with serving(TCP, "tcp://127.0.0.1:0", handler) as bound:
            first = await TCP.connect(bound, tls=None)
            assert await receive_until_closed(first) == b""  # closed after the failure
            await first.aclose()
            async with await TCP.connect(bound, tls=None) as second:
                await second.send_all(b"still here")
                assert await receive_exactly(second, 10) == b"still here"
    assert calls == 2
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


async def test_stream_is_closed_when_the_handler_returns() -> None:
    async def handler(stream: trio.abc.Stream) -> None:
        await stream.send_all(b"bye")

    with trio.fail_after(10):
        async with (
            serving(TCP, "tcp://127.0.0.1:0", handler) as bound,
            await TCP.connect(bound, tls=None) as stream,
        ):
            assert await receive_until_closed(stream) == b"bye"


async def test_cancelling_serve_closes_the_listener_and_connections() -> None:
    started = trio.Event()

    async def handler(stream: trio.abc.Stream) -> None:
        started.set()
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with serving(TCP, "tcp://127.0.0.1:0", handler) as bound:
            stream = await TCP.connect(bound, tls=None)
            await started.wait()
        # serving() cancelled the serve task: connection closed, port free.
        assert await receive_until_closed(stream) == b""
        await stream.aclose()
        with pytest.raises(ConnectionLost):
            await TCP.connect(bound, tls=None)


async def test_connecting_to_a_closed_port_is_connection_lost() -> None:
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(10), pytest.raises(ConnectionLost, match="refused") as info:
        await TCP.connect(parse_address(f"tcp://127.0.0.1:{port}"), tls=None)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.is_retryable


async def test_listening_on_a_busy_port_is_a_configuration_error() -> None:
    with trio.fail_after(10):
        async with serving(TCP, "tcp://127.0.0.1:0", echo) as bound:
            with pytest.raises(ConfigurationError, match="cannot listen on"):
                await TCP.serve(bound, echo, tls=None)


async def test_localhost_listeners_share_one_port() -> None:
    with trio.fail_after(10):
        async with serving(TCP, "tcp://localhost:0", echo) as bound:
            assert bound.host == "localhost" and bound.port > 0
            hosts = ["127.0.0.1"]
            if socket.has_ipv6:
                hosts.append("[::1]")
            reached = 0
            for host in hosts:
                try:
                    address = parse_address(f"tcp://{host}:{bound.port}")
                    stream = await TCP.connect(address, tls=None)
                except ConnectionLost:
                    continue  # localhost may not resolve to this family here
                async with stream:
                    await stream.send_all(b"hi")
                    assert await receive_exactly(stream, 2) == b"hi"
                    reached += 1
            assert reached >= 1


async def test_scheme_mismatch_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="cannot handle"):
        await TCP.connect(parse_address("tls://127.0.0.1:1"), tls=None)
