"""quic:// over real UDP sockets: echo, lanes, mutual TLS, retry, bad input."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing
from transport_helpers import Pki, echo, receive_exactly, receive_until_closed, serving

from trouper._errors import ConfigurationError, ConnectionLost, HandshakeFailed, ProtocolError
from trouper.transports import (
    LaneStream,
    QuicTransport,
    TLSConfig,
    get_transport,
    parse_address,
)

QUIC = QuicTransport(handshake_timeout=5.0)


async def round_trip(stream: trio.abc.Stream, payload: bytes) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, payload)  # concurrently: the echo pushes back
        assert await receive_exactly(stream, len(payload)) == payload


async def test_quic_is_the_registered_scheme() -> None:
    assert isinstance(get_transport("quic"), QuicTransport)


async def test_echo_over_mutual_tls_with_a_system_task_and_a_nursery(pki: Pki) -> None:
    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", echo, pki.config("server")) as bound:
            assert bound.scheme == "quic" and bound.port != 0
            client = pki.config("client")
            stream = await QUIC.connect(bound, tls=client)  # no nursery: a system task
            async with stream:
                await round_trip(stream, b"hello")
            async with trio.open_nursery() as nursery:
                stream = await QUIC.connect(bound, tls=client, nursery=nursery)
                async with stream:
                    await round_trip(stream, b"again")
                # Closing the stream ends the connection's task: the nursery exits.


async def test_large_payload_in_both_directions(pki: Pki) -> None:
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB
    with trio.fail_after(60):
        async with (
            serving(QUIC, "quic://127.0.0.1:0", echo, pki.config("server")) as bound,
            await QUIC.connect(bound, tls=pki.config("client")) as stream,
        ):
            await round_trip(stream, payload)


async def test_closing_gives_the_peer_eof_after_all_data(pki: Pki) -> None:
    received: list[bytes] = []
    done = trio.Event()

    async def handler(stream: trio.abc.Stream) -> None:
        received.append(await receive_until_closed(stream))
        done.set()

    payload = b"x" * 300_000
    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", handler, pki.config("server")) as bound:
            stream = await QUIC.connect(bound, tls=pki.config("client"))
            await stream.send_all(payload)
            await stream.aclose()
            await done.wait()
    assert received == [payload]
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"after close")


async def test_lanes_are_independent_one_way_streams(pki: Pki) -> None:
    lanes: list[bytes] = []
    main_seen = trio.Event()

    async def handler(stream: trio.abc.Stream) -> None:
        assert isinstance(stream, LaneStream)
        async with trio.open_nursery() as nursery:

            async def read_lane(lane: trio.abc.ReceiveStream) -> None:
                lanes.append(await receive_until_closed(lane))  # type: ignore[arg-type]

            for _ in range(2):
                nursery.start_soon(read_lane, await stream.accept_lane())
            assert await receive_exactly(stream, 4) == b"main"
            main_seen.set()
        await stream.send_all(b"done")  # both lanes were read to their end

    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", handler, pki.config("server")) as bound:
            stream = await QUIC.connect(bound, tls=pki.config("client"))
            async with stream:
                assert isinstance(stream, LaneStream)
                first, second = await stream.open_lane(), await stream.open_lane()
                await first.send_all(b"bulk " * 100_000)
                await second.send_all(b"other")
                await stream.send_all(b"main")
                await main_seen.wait()
                await first.aclose()
                await second.aclose()
                assert await receive_exactly(stream, 4) == b"done"
    assert sorted(lanes) == sorted([b"bulk " * 100_000, b"other"])


async def test_a_client_without_a_certificate_is_refused(pki: Pki) -> None:
    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", echo, pki.config("server")) as bound:
            with pytest.raises(HandshakeFailed, match="client certificate refused"):
                await QUIC.connect(bound, tls=pki.config(None))
            # The listener is unaffected.
            async with await QUIC.connect(bound, tls=pki.config("client")) as stream:
                await round_trip(stream, b"still serving")


async def test_certificates_from_another_ca_are_refused_both_ways(pki: Pki, other_pki: Pki) -> None:
    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", echo, pki.config("server")) as bound:
            # A client certificate signed by a CA the server does not trust.
            stranger = TLSConfig(certfile=other_pki.config("client").certfile, cafile=pki.cafile)
            with pytest.raises(HandshakeFailed, match="refused"):
                await QUIC.connect(bound, tls=stranger)
            # A client that does not trust the server's CA.
            with pytest.raises(HandshakeFailed):
                await QUIC.connect(bound, tls=other_pki.config("client"))


async def test_optional_client_certificates(pki: Pki) -> None:
    server = pki.config("server", require_client_cert=False)
    with trio.fail_after(20):
        async with (
            serving(QUIC, "quic://127.0.0.1:0", echo, server) as bound,
            await QUIC.connect(bound, tls=pki.config(None)) as stream,
        ):
            await round_trip(stream, b"anonymous")


async def test_hostname_is_checked_unless_disabled(pki: Pki) -> None:
    server = pki.config("server", hosts=("node-a.example",))
    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", echo, server) as bound:
            with pytest.raises(HandshakeFailed):
                await QUIC.connect(bound, tls=pki.config("client"))
            relaxed = pki.config("client", check_hostname=False)
            async with await QUIC.connect(bound, tls=relaxed) as stream:
                await round_trip(stream, b"by CA only")


async def test_listening_needs_a_certificate() -> None:
    with pytest.raises(ConfigurationError, match="certificate"):
        await QUIC.serve(parse_address("quic://127.0.0.1:0"), echo, tls=None)


async def test_nothing_listening_is_a_lost_connection(pki: Pki) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with trio.fail_after(10), pytest.raises(ConnectionLost, match="refused"):
        await QUIC.connect(parse_address(f"quic://127.0.0.1:{port}"), tls=pki.config("client"))


async def test_a_silent_peer_times_out(pki: Pki) -> None:
    impatient = QuicTransport(handshake_timeout=0.5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, so no ICMP refusal: just silence
        address = parse_address(f"quic://127.0.0.1:{silent.getsockname()[1]}")
        with trio.fail_after(10), pytest.raises(HandshakeFailed, match="no answer"):
            await impatient.connect(address, tls=pki.config("client"))


async def test_retry_validates_the_address_first(pki: Pki) -> None:
    validating = QuicTransport(retry=True, handshake_timeout=5.0)
    with trio.fail_after(20):
        async with (
            serving(validating, "quic://127.0.0.1:0", echo, pki.config("server")) as bound,
            await validating.connect(bound, tls=pki.config("client")) as stream,
        ):
            await round_trip(stream, b"validated")
            quic = stream.session.quic  # type: ignore[attr-defined]
            assert quic._retry_count == 1  # the server did answer with a Retry


async def test_garbage_datagrams_do_not_disturb_a_live_connection(pki: Pki) -> None:
    with trio.fail_after(20):
        async with (
            serving(QUIC, "quic://127.0.0.1:0", echo, pki.config("server")) as bound,
            await QUIC.connect(bound, tls=pki.config("client")) as stream,
        ):
            await round_trip(stream, b"before")
            with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
                for size in (0, 1, 20, 1200, 1500):
                    await attacker.sendto(b"\xc3" + bytes(size), ("127.0.0.1", bound.port))
                    await attacker.sendto(bytes(size), ("127.0.0.1", bound.port))
            await round_trip(stream, b"after")


async def test_a_second_bidirectional_stream_is_a_protocol_error(pki: Pki) -> None:
    errors: list[BaseException] = []

    async def handler(stream: trio.abc.Stream) -> None:
        try:
            await receive_until_closed(stream)
        except BaseException as exc:
            errors.append(exc)
            raise

    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", handler, pki.config("server")) as bound:
            stream = await QUIC.connect(bound, tls=pki.config("client"))
            async with stream:
                await stream.send_all(b"main")
                session = stream.session  # type: ignore[attr-defined]
                extra = session.quic.get_next_available_stream_id()
                session.quic.send_stream_data(extra, b"not allowed")
                session.transmit()
                with pytest.raises(trio.BrokenResourceError) as info:
                    while True:
                        await stream.receive_some()
                assert isinstance(info.value.__cause__, ProtocolError | ConnectionLost)


async def test_a_failing_handler_does_not_stop_the_listener(pki: Pki) -> None:
    calls = 0

    async def handler(stream: trio.abc.Stream) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("handler bug")
        await echo(stream)

    with trio.fail_after(20):
        async with serving(QUIC, "quic://127.0.0.1:0", handler, pki.config("server")) as bound:
            first = await QUIC.connect(bound, tls=pki.config("client"))
            async with first:
                await first.send_all(b"x")
                assert await receive_until_closed(first) == b""
            async with await QUIC.connect(bound, tls=pki.config("client")) as second:
                await round_trip(second, b"fine")


async def test_send_eof_half_closes(pki: Pki) -> None:
    async def handler(stream: trio.abc.Stream) -> None:
        request = await receive_until_closed(stream)  # ends at the client's EOF
        await stream.send_all(request.upper())

    with trio.fail_after(20):
        async with (
            serving(QUIC, "quic://127.0.0.1:0", handler, pki.config("server")) as bound,
            await QUIC.connect(bound, tls=pki.config("client")) as stream,
        ):
            assert isinstance(stream, trio.abc.HalfCloseableStream)
            await stream.send_all(b"question")
            await stream.send_eof()
            assert await receive_exactly(stream, 8) == b"QUESTION"
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"more")
