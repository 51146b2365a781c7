"""ws:// and wss:// over real sockets: echo, TLS, paths, bad input, sizes, close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing
import trio_websocket
from transport_helpers import Pki, echo, receive_exactly, serving

import trouper
from trouper._errors import (
    ConfigurationError,
    ConnectionLost,
    FrameTooLarge,
    HandshakeFailed,
    ProtocolError,
)
from trouper.transports import (
    Address,
    TLSConfig,
    Transport,
    WssTransport,
    WsTransport,
    get_transport,
    map_exceptions,
    parse_address,
)
from trouper.transports._ws_stream import WebSocketStream

WS = WsTransport()
WSS = WssTransport()
COOKIE = b"ws-cookie"


def websocket_tasks() -> list[str]:
    """The names of the live tasks that serve a WebSocket (ours and trio-websocket's)."""
    names, todo = [], [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        if "websocket" in task.name:
            names.append(task.name)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return names


def recording(
    handler: Callable[[trio.abc.Stream], Awaitable[None]],
) -> tuple[Callable[[trio.abc.Stream], Awaitable[None]], list[BaseException], trio.Event]:
    """``handler`` wrapped to keep what it raised and to say when it is done."""
    errors: list[BaseException] = []
    done = trio.Event()

    async def wrapped(stream: trio.abc.Stream) -> None:
        try:
            await handler(stream)
        except Exception as exc:
            errors.append(exc)
        finally:
            done.set()

    return wrapped, errors, done


async def assert_echo(
    transport: Transport, address: Address, tls: TLSConfig | None, payload: bytes
) -> None:
    stream = await transport.connect(address, tls=tls)
    async with stream, trio.open_nursery() as nursery:
        assert isinstance(stream, WebSocketStream)
        nursery.start_soon(stream.send_all, payload)  # concurrently: the echo pushes back
        assert await receive_exactly(stream, len(payload)) == payload


async def test_registered_and_configurable() -> None:
    assert isinstance(get_transport("ws"), WsTransport)
    assert isinstance(get_transport("WSS"), WssTransport)
    assert isinstance(WS, Transport) and isinstance(WSS, Transport)
    assert WS.max_message_size == 17 * 1024 * 1024  # the runtime's 16 MiB frames fit
    for bad in ({"max_message_size": 0}, {"handshake_timeout": 0}, {"close_timeout": -1}):
        with pytest.raises(ConfigurationError):
            WsTransport(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="certificate"):
        await WSS.serve(parse_address("wss://127.0.0.1:0/x"), echo, tls=None)


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from trouper.transports import _registry

    monkeypatch.delitem(_registry._TRANSPORTS, "wss", raising=False)
    # As if trio-websocket were not installed: the lazy import fails.
    monkeypatch.setitem(_registry.LAZY, "wss", ("trouper.transports._not_installed", "X"))
    with pytest.raises(ConfigurationError, match=r"pip install 'trouper\[ws\]'"):
        get_transport("wss")


async def test_echo_over_ws_keeps_the_path() -> None:
    with trio.fail_after(10):
        async with serving(WS, "ws://127.0.0.1:0/trouper", echo) as bound:
            assert bound.url == f"ws://127.0.0.1:{bound.port}/trouper" and bound.port > 0
            await assert_echo(WS, bound, None, b"x" * 300_000)
            await assert_echo(WS, bound, None, b"hello")


async def test_echo_over_wss_with_mutual_tls(pki: Pki) -> None:
    seen: list[object] = []

    async def handler(stream: trio.abc.Stream) -> None:
        assert isinstance(stream, WebSocketStream)
        seen.append(stream.peer)
        await echo(stream)

    with trio.fail_after(10):
        async with serving(WSS, "wss://127.0.0.1:0/p", handler, pki.config("server")) as bound:
            assert bound.url.startswith("wss://127.0.0.1:") and bound.path == "/p"
            await assert_echo(WSS, bound, pki.config("client"), b"y" * 300_000)
    assert seen and str(seen[0]).startswith("wss://127.0.0.1:")


async def test_mutual_tls_refuses_foreign_certificates(pki: Pki, other_pki: Pki) -> None:
    foreign = other_pki.config("intruder")
    signed_elsewhere = TLSConfig(certfile=foreign.certfile, cafile=pki.cafile)
    with trio.fail_after(10):
        async with serving(WSS, "wss://127.0.0.1:0/p", echo, pki.config("server")) as bound:
            for client in (signed_elsewhere, pki.config(None), other_pki.config("client")):
                # Refused at connect, or (TLS 1.3: the server checks the client's
                # certificate after the client is done) at the first read.
                with pytest.raises(HandshakeFailed, match="TLS") as info:
                    stream = await WSS.connect(bound, tls=client)
                    async with stream:
                        await stream.send_all(b"let me in")
                        await stream.receive_some()
                assert not info.value.is_retryable
            await assert_echo(WSS, bound, pki.config("client"), b"still serving")


async def test_a_wrong_path_is_refused_with_404() -> None:
    handler, errors, _ = recording(echo)
    with trio.fail_after(10):
        async with serving(WS, "ws://127.0.0.1:0/trouper", handler) as bound:
            wrong = parse_address(bound.url.replace("/trouper", "/elsewhere"))
            with pytest.raises(HandshakeFailed, match="HTTP 404"):
                await WS.connect(wrong, tls=None)
            await assert_echo(WS, bound, None, b"right path")
    assert errors == []  # the handler never saw the refused client


async def test_a_text_message_is_a_protocol_error() -> None:
    async def read(stream: trio.abc.Stream) -> None:
        await stream.receive_some()

    handler, errors, done = recording(read)
    with trio.fail_after(10):
        async with serving(WS, "ws://127.0.0.1:0/t", handler) as bound:
            async with trio_websocket.open_websocket_url(bound.url) as ws:
                await ws.send_message("a text message")
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1003  # unsupported data
            await done.wait()
    assert len(errors) == 1 and isinstance(errors[0], ProtocolError)
    assert "text" in str(errors[0])


async def test_a_text_message_to_a_client_is_a_protocol_error() -> None:
    async def talker(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message("not bytes")
        with pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(trio_websocket.serve_websocket, talker, "127.0.0.1", 0, None)
            )
            address = parse_address(f"ws://127.0.0.1:{server.port}/")
            stream = await WS.connect(address, tls=None)
            async with stream:
                with pytest.raises(ProtocolError, match="text"):
                    await stream.receive_some()
            nursery.cancel_scope.cancel()
    assert websocket_tasks() == []


async def test_eight_mib_messages_and_small_reads() -> None:
    big = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    with trio.fail_after(30):
        async with serving(WS, "ws://127.0.0.1:0/big", echo) as bound:
            await assert_echo(WS, bound, None, big)
            stream = await WS.connect(bound, tls=None)
            async with stream:
                await stream.send_all(b"0123456789")
                assert await stream.receive_some(4) == b"0123"  # the rest is kept...
                assert await stream.receive_some(4) == b"4567"
                assert await stream.receive_some() == b"89"  # ...until asked for


async def test_large_writes_are_split_and_large_messages_refused() -> None:
    small = WsTransport(max_message_size=1024)
    handler, errors, done = recording(echo)
    with trio.fail_after(10):
        async with serving(small, "ws://127.0.0.1:0/s", handler) as bound:
            await assert_echo(small, bound, None, b"z" * 10_000)  # 10 messages each way
            async with trio_websocket.open_websocket_url(bound.url) as ws:
                await ws.send_message(b"z" * 1025)
                with pytest.raises(trio_websocket.ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1009  # message too big
            await done.wait()
    assert len(errors) == 1 and isinstance(errors[0], FrameTooLarge)


async def test_close_semantics() -> None:
    server_saw: list[bytes] = []
    closed = trio.Event()

    async def handler(stream: trio.abc.Stream) -> None:
        data = await stream.receive_some()
        if data == b"close":
            return  # the transport closes the stream (1000): the client reads EOF
        server_saw.append(data)
        server_saw.append(await stream.receive_some())  # EOF once the client closes
        closed.set()

    with trio.fail_after(10):
        async with serving(WS, "ws://127.0.0.1:0/c", handler) as bound:
            # The server hangs up: EOF, and EOF again.
            stream = await WS.connect(bound, tls=None)
            await stream.send_all(b"close")
            assert await stream.receive_some() == b""
            assert await stream.receive_some() == b""
            await stream.aclose()
            # The client hangs up: the server reads EOF; the closed stream refuses use.
            stream = await WS.connect(bound, tls=None)
            await stream.send_all(b"bye")
            await stream.aclose()
            await closed.wait()
            assert server_saw == [b"bye", b""]
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"more")
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some()
            await stream.aclose()  # idempotent


async def test_an_abrupt_close_is_a_lost_connection() -> None:
    handler, errors, done = recording(echo)
    with trio.fail_after(10):
        async with serving(WS, "ws://127.0.0.1:0/c", handler) as bound:
            stream = await WS.connect(bound, tls=None)
            await stream.send_all(b"hi")
            assert await stream.receive_some() == b"hi"
            await trio.aclose_forcefully(stream)  # no closing handshake: code 1006
            await done.wait()
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLost)
    assert "1006" in str(errors[0])


async def test_closing_wakes_a_blocked_reader_and_a_second_reader_is_busy() -> None:
    with trio.fail_after(10):
        async with serving(WS, "ws://127.0.0.1:0/c", echo) as bound:
            stream = await WS.connect(bound, tls=None)
            failures: list[BaseException] = []

            async def blocked_reader(task_status: trio.TaskStatus[None]) -> None:
                task_status.started()
                try:
                    await stream.receive_some()
                except trio.ClosedResourceError as exc:
                    failures.append(exc)

            async with trio.open_nursery() as nursery:
                await nursery.start(blocked_reader)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(trio.BusyResourceError):
                    await stream.receive_some()
                await stream.aclose()
            assert len(failures) == 1


async def test_no_task_outlives_its_stream(pki: Pki) -> None:
    with trio.fail_after(10):
        async with (
            serving(WS, "ws://127.0.0.1:0/n", echo) as plain,
            serving(WSS, "wss://127.0.0.1:0/n", echo, pki.config("server")) as secure,
        ):
            for transport, bound, tls in ((WS, plain, None), (WSS, secure, pki.config("c"))):
                mine = f"trouper websocket {bound.url}"
                stream = await transport.connect(bound, tls=tls)
                assert mine in websocket_tasks()  # a system task owns the reader
                await stream.send_all(b"ping")
                assert await stream.receive_some() == b"ping"
                await stream.aclose()
                assert not [t for t in websocket_tasks() if bound.url in t]
                # With a nursery of the caller's: the tasks live there, until aclose.
                async with trio.open_nursery() as nursery:
                    stream = await WS.connect(plain, tls=None, nursery=nursery)
                    assert len(nursery.child_tasks) == 1
                    await stream.aclose()
                    assert len(nursery.child_tasks) == 0
            with pytest.raises(HandshakeFailed):
                await WS.connect(parse_address(plain.url + "/nope"), tls=None)
            assert not [t for t in websocket_tasks() if t.endswith("/nope")]
    assert websocket_tasks() == []  # nor the servers' ones, once they stop


async def test_a_silent_server_times_out_and_a_cancelled_dial_leaves_nothing() -> None:
    accepted = trio.Event()

    async def silent(stream: trio.SocketStream) -> None:
        accepted.set()
        await trio.sleep_forever()

    impatient = WsTransport(handshake_timeout=0.2)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
            address = parse_address(f"ws://127.0.0.1:{listener.socket.getsockname()[1]}/x")
            with pytest.raises(HandshakeFailed, match="no answer"):
                await impatient.connect(address, tls=None)
            assert websocket_tasks() == []
            accepted = trio.Event()
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as dialling:
                    dialling.start_soon(WS.connect, address)
                    await accepted.wait()
                    await trio.testing.wait_all_tasks_blocked()
                    scope.cancel()
            assert scope.cancelled_caught
            assert websocket_tasks() == []
            nursery.cancel_scope.cancel()


async def test_refused_and_unreachable_peers_map_to_trouper_errors() -> None:
    with trio.fail_after(10):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        await listeners[0].aclose()
        with pytest.raises(ConnectionLost, match="refused"):
            await WS.connect(parse_address(f"ws://127.0.0.1:{port}/"), tls=None)
    error = trio_websocket.ConnectionRejected(403, (), None)
    with pytest.raises(HandshakeFailed, match="403"), map_exceptions("ws://x:1/"):
        raise error
    with pytest.raises(ConnectionLost), map_exceptions("ws://x:1/"):
        raise trio_websocket.DisconnectionTimeout()


class Twice(trouper.Actor):
    @trouper.handler
    async def twice(self, msg: int) -> int:
        return 2 * msg


async def test_nodes_talk_over_ws() -> None:
    with trio.fail_after(20):
        async with trouper.open_node("a", listen="ws://127.0.0.1:0/trouper", cookie=COOKIE) as a:
            (url,) = a.addresses
            assert url.startswith("ws://127.0.0.1:") and url.endswith("/trouper")
            async with trouper.open_node("b", seeds=a.addresses, cookie=COOKIE) as b:
                await b.wait_for_members(2, timeout=10)
                await a.spawn(Twice, name="twice")
                ref = await b.lookup("twice", timeout=5)
                assert await ref.ask(21) == 42
