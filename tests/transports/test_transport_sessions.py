"""The public message API (connect, serve, broadcast, graceful_shutdown),
the same suite over every scheme: tcp, tls, ws, wss and quic."""

from __future__ import annotations

import random
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing
from transport_helpers import Pki, eventually, serving

from trouper import ConfigurationError, ConnectionLost, FrameTooLarge, TransportError
from trouper.transports import (
    LaneStream,
    MessageServer,
    MessageSession,
    SendTimeout,
    broadcast,
    connect,
    get_transport,
    graceful_shutdown,
    serve,
)

SCHEMES = ["tcp", "tls", "ws", "wss", "quic"]
TIMEOUT = 20


@dataclass
class Net:
    scheme: str
    pki: Pki

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:0" + ("/msgs" if self.scheme in ("ws", "wss") else "")

    @property
    def secure(self) -> bool:
        return self.scheme in ("tls", "wss", "quic")

    def serve(self, handler: Callable[[MessageSession], Awaitable[None]], **opts: object) -> object:
        tls = self.pki.config("server") if self.secure else None
        return serve(self.url, handler, tls=tls, **opts)  # type: ignore[arg-type]

    def connect(self, server: MessageServer, **opts: object) -> object:
        tls = self.pki.config("client") if self.secure else None
        return connect(server.url, tls=tls, **opts)  # type: ignore[arg-type]


@pytest.fixture(params=SCHEMES)
def net(request: pytest.FixtureRequest, pki: Pki) -> Net:
    return Net(request.param, pki)


@asynccontextmanager
async def running(
    net: Net, handler: Callable[[MessageSession], Awaitable[None]], **opts: object
) -> AsyncIterator[MessageServer]:
    async with net.serve(handler, **opts) as server:  # type: ignore[attr-defined]
        yield server


async def echo(session: MessageSession) -> None:
    async for message in session:
        await session.send(message)


async def test_echo_of_many_sizes(net: Net) -> None:
    sizes = [0, 1, 3, 4, 5, 1000, 65_535, 65_536, 200_000]
    with trio.fail_after(TIMEOUT):
        async with running(net, echo) as server, net.connect(server) as session:
            assert isinstance(session, MessageSession)
            for size in sizes:
                await session.send(bytes([size % 251]) * size)
            for size in sizes:
                assert await session.receive() == bytes([size % 251]) * size
            stats = session.statistics()
            assert stats.messages_received == len(sizes)
            assert stats.bytes_received == sum(sizes)
            assert session.remote_address == server.url
            assert server.statistics().active == 1


async def test_a_server_may_speak_first(net: Net) -> None:
    async def greeter(session: MessageSession) -> None:
        await session.send(b"welcome")
        await session.send_eof()

    with trio.fail_after(TIMEOUT):
        async with running(net, greeter) as server, net.connect(server) as session:
            assert [message async for message in session] == [b"welcome"]


async def test_awaited_connect_and_serve_run_in_the_callers_nursery(net: Net) -> None:
    tls_server = net.pki.config("server") if net.secure else None
    tls_client = net.pki.config("client") if net.secure else None
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            server = await serve(net.url, echo, tls=tls_server, nursery=nursery)
            session = await connect(server.url, tls=tls_client, nursery=nursery)
            await session.send(b"ping")
            assert await session.receive() == b"ping"
            await session.aclose()
            assert session.closed
            await server.aclose()


async def test_a_message_at_the_limit_passes_and_one_over_it_is_refused(net: Net) -> None:
    limit = 100_000
    with trio.fail_after(TIMEOUT):
        async with (
            running(net, echo, max_message_size=limit) as server,
            net.connect(server, max_message_size=limit) as session,
        ):
            await session.send(b"x" * limit)
            assert await session.receive() == b"x" * limit
            with pytest.raises(FrameTooLarge) as info:
                await session.send(b"x" * (limit + 1))
            text = str(info.value)
            assert str(limit + 1) in text and str(limit) in text
            assert info.value.session == session.id and info.value.operation == "send"
            await session.send(b"still open")  # only the offender was refused
            assert await session.receive() == b"still open"


async def test_a_peer_sending_over_our_limit_closes_only_that_session(net: Net) -> None:
    errors: list[BaseException] = []

    async def strict(session: MessageSession) -> None:
        try:
            async for message in session:
                await session.send(message)
        except FrameTooLarge as exc:
            errors.append(exc)

    with trio.fail_after(TIMEOUT):
        async with running(net, strict, max_message_size=1000) as server:
            async with net.connect(server) as good, net.connect(server) as bad:
                await bad.send(b"y" * 5000)
                with pytest.raises(TransportError):
                    if await bad.receive() is None:  # the server closed it: EOF or an error
                        raise ConnectionLost("closed")
                await good.send(b"fine")
                assert await good.receive() == b"fine"
            assert len(errors) == 1
            assert "5000" in str(errors[0]) and "1000" in str(errors[0])


async def test_half_close_lets_the_peer_answer_after_our_end(net: Net) -> None:
    async def count(session: MessageSession) -> None:
        total = [message async for message in session]
        await session.send(b"%d messages" % len(total))
        await session.send(b"".join(total))

    with trio.fail_after(TIMEOUT):
        async with running(net, count) as server, net.connect(server) as session:
            for part in (b"a", b"bc", b"def"):
                await session.send(part)
            await session.send_eof()
            with pytest.raises(TransportError):
                await session.send(b"after the end")
            assert await session.receive() == b"3 messages"
            assert await session.receive() == b"abcdef"
            assert await session.receive() is None  # the handler returned: the end
            assert await session.receive() is None


async def test_a_crashing_handler_closes_only_its_own_session(net: Net) -> None:
    async def fragile(session: MessageSession) -> None:
        async for message in session:
            if message == b"crash":
                raise RuntimeError("handler bug")
            await session.send(message)

    with trio.fail_after(TIMEOUT):
        async with (
            running(net, fragile) as server,
            net.connect(server) as other,
            net.connect(server) as victim,
        ):
            await victim.send(b"crash")
            try:
                assert await victim.receive() is None
            except ConnectionLost:
                pass  # an abrupt close may read as a lost connection
            await other.send(b"alive")
            assert await other.receive() == b"alive"
            await eventually(lambda: server.statistics().failed == 1)
            with pytest.raises(ConnectionLost) as info:
                for _ in range(1000):  # writes to a closed peer fail eventually
                    await victim.send(b"x" * 10_000)
                    await victim.flush()
            assert info.value.is_retryable


async def test_a_peer_that_never_reads_meets_a_bounded_send_buffer(net: Net) -> None:
    release = trio.Event()
    received: list[int] = []

    async def lazy(session: MessageSession) -> None:
        await release.wait()
        async for message in session:
            received.append(len(message))

    # 70 MB: beyond any socket buffer, and beyond QUIC's 64 MiB receive buffer.
    size, count, buffer = 16_384, 4300, 65_536
    sent = 0
    failure: list[TransportError] = []
    peak = 0

    async def flood(session: MessageSession) -> None:
        nonlocal sent, peak
        try:
            for _ in range(count):
                await session.send(b"z" * size)
                sent += 1
                peak = max(peak, session.statistics().queued_bytes)
            await session.send_eof()
            await session.flush()
        except TransportError as exc:
            failure.append(exc)

    # Over QUIC 64 MiB go through aioquic, in pure Python: give it time.
    with trio.fail_after(TIMEOUT * (8 if net.scheme == "quic" else 3)):
        async with running(net, lazy) as server, net.connect(server, send_buffer=buffer) as s:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood, s)
                if net.scheme == "quic":
                    # aioquic grants credit as data arrives, not as it is read:
                    # the receiver's bound is its 64 MiB buffer, then it closes
                    # the connection (see the limits in docs/transports.md).
                    await eventually(lambda: bool(failure))
                    assert isinstance(failure[0], ConnectionLost)
                    release.set()
                    return
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert sent < count  # blocked: backpressure, not unbounded growth
                assert s.statistics().queued_bytes <= buffer
                release.set()
            await eventually(lambda: len(received) == count)
    assert sent == count and set(received) == {size} and not failure
    assert peak <= buffer


async def test_concurrent_sessions_do_not_mix(net: Net) -> None:
    results: dict[int, list[bytes]] = {}

    async def client(server: MessageServer, index: int) -> None:
        async with net.connect(server) as session:
            for n in range(10):
                await session.send(b"%d:%d" % (index, n))
            results[index] = [await session.receive() or b"" for _ in range(10)]

    with trio.fail_after(TIMEOUT * 2):
        async with running(net, echo) as server, trio.open_nursery() as nursery:
            for index in range(12):
                nursery.start_soon(client, server, index)
    assert results == {i: [b"%d:%d" % (i, n) for n in range(10)] for i in range(12)}


async def test_max_sessions_refuses_the_connection_beyond_it(net: Net) -> None:
    with trio.fail_after(TIMEOUT):
        async with running(net, echo, max_sessions=1) as server, net.connect(server) as first:
            await first.send(b"1")
            assert await first.receive() == b"1"
            async with net.connect(server) as second:
                try:
                    await second.send(b"2")
                    assert await second.receive() is None
                except ConnectionLost:
                    pass
            assert server.statistics().refused == 1


async def test_broadcast_reports_a_dead_and_a_slow_session_without_waiting_on_them(
    net: Net,
) -> None:
    by_name: dict[bytes, MessageSession] = {}

    async def register(session: MessageSession) -> None:
        name = await session.receive()
        assert name is not None
        by_name[name] = session
        async for _ in session:
            pass  # ends when the client goes away

    with trio.fail_after(TIMEOUT * 2):
        async with (
            running(net, register, send_buffer=65_536) as server,
            net.connect(server) as a,
            net.connect(server) as b,
            net.connect(server) as slow,
        ):
            async with net.connect(server) as dead:
                for name, session in ((b"a", a), (b"b", b), (b"slow", slow), (b"dead", dead)):
                    await session.send(name)
                await eventually(lambda: len(by_name) == 4)
            await eventually(lambda: by_name[b"dead"].closed)
            # Fill the slow client's server-side buffer: it never reads. (Not
            # over QUIC: its peer buffers 64 MiB rather than push back, see
            # the never-reads test.)
            for _ in range(10_000 if net.scheme != "quic" else 0):
                filled = await broadcast([by_name[b"slow"]], b"f" * 32_768, timeout=0.05)
                if filled[by_name[b"slow"].id] is not None:
                    break
            # 40 kB: more than what is left of the slow one's 64 KiB buffer.
            news = b"news" * 10_000
            results = await broadcast(by_name.values(), news, timeout=0.5)
            assert results[by_name[b"a"].id] is None
            assert results[by_name[b"b"].id] is None
            dead_error = results[by_name[b"dead"].id]
            assert isinstance(dead_error, ConnectionLost)
            slow_error = results[by_name[b"slow"].id]
            if net.scheme == "quic":
                assert slow_error is None
            else:
                assert isinstance(slow_error, SendTimeout) and slow_error.is_retryable
                assert slow_error.session == by_name[b"slow"].id
                assert slow_error.operation == "broadcast"
            assert await a.receive() == news
            assert await b.receive() == news


async def test_graceful_shutdown_lets_an_in_flight_handler_finish(net: Net) -> None:
    started, release = trio.Event(), trio.Event()

    async def slow_reply(session: MessageSession) -> None:
        request = await session.receive()
        started.set()
        await release.wait()
        await session.send(b"done: " + (request or b""))

    with trio.fail_after(TIMEOUT):
        async with running(net, slow_reply) as server, net.connect(server) as session:
            await session.send(b"job")
            await started.wait()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(graceful_shutdown, server, 30.0)
                await eventually(lambda: not server.accepting)
                if net.scheme != "quic":  # quic keeps its socket for the handler's packets
                    with pytest.raises(ConnectionLost):
                        async with net.connect(server, connect_timeout=5):
                            pass
                release.set()
                assert await session.receive() == b"done: job"
            assert server.statistics().active == 0


async def test_graceful_shutdown_cancels_handlers_still_running_at_the_timeout(net: Net) -> None:
    cancelled = trio.Event()

    async def stuck(session: MessageSession) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    with trio.fail_after(TIMEOUT):
        async with running(net, stuck) as server, net.connect(server) as session:
            await session.send(b"hello")
            await eventually(lambda: server.statistics().active == 1)
            await server.graceful_shutdown(timeout=0.1)
            assert cancelled.is_set()
            try:
                assert await session.receive() is None
            except ConnectionLost:
                pass


async def test_errors_name_the_operation_and_the_target(net: Net) -> None:
    with trio.fail_after(TIMEOUT), pytest.raises(ConnectionLost) as info:
        async with running(net, echo) as server:
            url = server.url
        tls = net.pki.config("client") if net.secure else None
        async with connect(url, tls=tls, connect_timeout=5):
            pass
    assert info.value.operation == "connect" and info.value.session == url
    assert info.value.is_retryable and info.value.error_code == "connection-lost"


async def test_bad_arguments_are_configuration_errors(net: Net) -> None:
    with pytest.raises(ConfigurationError, match="max_message_size"):
        connect("tcp://127.0.0.1:1", max_message_size=0)
    with pytest.raises(ConfigurationError, match="send_buffer"):
        connect("tcp://127.0.0.1:1", send_buffer=-1)
    with pytest.raises(ConfigurationError, match="max_sessions"):
        serve("tcp://127.0.0.1:0", echo, max_sessions=0)
    with pytest.raises(ConfigurationError, match="handler"):
        serve("tcp://127.0.0.1:0", "echo")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unknown scheme"):
        serve("http://127.0.0.1:0", echo)
    with pytest.raises(ConfigurationError, match="unknown scheme") as info:
        await connect("http://127.0.0.1:1")
    assert info.value.operation == "connect"
    with pytest.raises(ConfigurationError, match="timeout"):
        await broadcast([], b"", timeout=0)
    with trio.fail_after(TIMEOUT):
        async with running(net, echo) as server, net.connect(server) as session:
            with pytest.raises(ConfigurationError, match="str"):
                await session.send("text")  # type: ignore[arg-type]
            await session.send(b"ok")
            assert await session.receive() == b"ok"
    assert not isinstance(session.stream, LaneStream) or net.scheme == "quic"


@pytest.mark.parametrize("scheme", ["tcp", "tls", "quic"])
async def test_a_peer_that_dies_in_mid_message_is_a_lost_connection(scheme: str, pki: Pki) -> None:
    """A raw peer (the transport alone) announces 100 bytes, sends 10, hangs up."""

    async def half_a_message(stream: trio.abc.Stream) -> None:
        await stream.send_all(struct.pack(">I", 100) + b"0123456789")

    secure = scheme != "tcp"
    transport = get_transport(scheme)
    with trio.fail_after(TIMEOUT):
        async with serving(
            transport, f"{scheme}://127.0.0.1:0", half_a_message, pki.config("server")
        ) as bound:
            tls = pki.config("client") if secure else None
            async with connect(bound.url, tls=tls) as session:
                with pytest.raises(ConnectionLost, match="mid-message") as info:
                    await session.receive()
                assert info.value.operation == "receive" and info.value.session == session.id


async def test_a_handler_cannot_wait_for_its_own_server() -> None:
    refused: list[ConfigurationError] = []
    server_box: list[MessageServer] = []

    async def shutting(session: MessageSession) -> None:
        try:
            await server_box[0].graceful_shutdown(1)
        except ConfigurationError as exc:
            refused.append(exc)
        await session.send(b"still here")

    with trio.fail_after(TIMEOUT):
        async with serve("tcp://127.0.0.1:0", shutting) as server:
            server_box.append(server)
            async with connect(server.url) as session:
                assert await session.receive() == b"still here"
    assert len(refused) == 1 and "another task" in str(refused[0])
    with pytest.raises(ConfigurationError, match="nursery="):
        await serve("tcp://127.0.0.1:0", echo)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_send_cancelled_at_any_moment_leaves_no_half_message(net: Net, seed: int) -> None:
    """Senders give up at random moments; the peer still reads only whole
    messages, in order, and every send that returned was delivered."""
    rng = random.Random(seed)
    got: list[bytes] = []
    done = trio.Event()

    async def collect(session: MessageSession) -> None:
        async for message in session:
            got.append(message)
        done.set()

    delivered: list[int] = []
    with trio.fail_after(TIMEOUT * 3):
        async with (
            running(net, collect) as server,
            net.connect(server, send_buffer=50_000) as session,
        ):
            for n in range(300):
                body = b"%d:" % n + bytes([n % 251]) * rng.choice([0, 10, 5_000, 40_000])
                with trio.move_on_after(rng.choice([0, 0, 1e-4, 1e-3, 1.0])):
                    await session.send(body)
                    delivered.append(n)
            await session.send_eof()
            await done.wait()
    assert 0 < len(delivered) < 300  # some sends were given up on
    numbers = [int(message.split(b":", 1)[0]) for message in got]
    assert numbers == sorted(numbers)  # in order, nothing twice
    assert set(delivered) <= set(numbers)  # every completed send arrived
    for message, n in zip(got, numbers, strict=True):
        rest = message.split(b":", 1)[1]
        assert rest == bytes([n % 251]) * len(rest)  # whole, not spliced
