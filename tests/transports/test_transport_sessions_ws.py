"""The message API over WebSocket speaks plain WebSocket: any client can use it."""

from __future__ import annotations

import trio
from transport_helpers import eventually
from trio_websocket import ConnectionClosed, open_websocket_url

from trouper import RemoteProtocolError
from trouper.transports import MessageSession, serve

TIMEOUT = 20


async def test_a_plain_websocket_client_exchanges_native_messages() -> None:
    async def echo(session: MessageSession) -> None:
        async for message in session:
            await session.send(message.upper())

    with trio.fail_after(TIMEOUT):
        async with (
            serve("ws://127.0.0.1:0/chat", echo) as server,
            open_websocket_url(server.url) as ws,
        ):
            for text in (b"hello", b"", b"x" * 100_000):
                await ws.send_message(text)
                assert await ws.get_message() == text.upper()
            await ws.send_message("trouper:end")  # the end mark: the handler returns
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                assert exc.reason is not None and exc.reason.code == 1000


async def test_a_text_message_is_bad_input_that_ends_only_its_session() -> None:
    errors: list[RemoteProtocolError] = []

    async def strict(session: MessageSession) -> None:
        try:
            async for message in session:
                await session.send(message)
        except RemoteProtocolError as exc:
            errors.append(exc)

    with trio.fail_after(TIMEOUT):
        async with (
            serve("ws://127.0.0.1:0/p", strict) as server,
            open_websocket_url(server.url) as good,
            open_websocket_url(server.url) as bad,
        ):
            await bad.send_message("not binary")
            await good.send_message(b"fine")
            assert await good.get_message() == b"fine"
            await eventually(lambda: bool(errors))
    assert "text WebSocket message" in str(errors[0])
    assert errors[0].operation == "receive"
