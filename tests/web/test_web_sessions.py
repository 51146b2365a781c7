"""WebSocket sessions: echo, many clients, closes on either side, failures, limits."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url
from web_helpers import Echo, Recorder, wait_actors

import trouper
from trouper.web import WebGateway, open_gateway


@pytest.fixture(autouse=True)
def quiet_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="trouper")


def echo_config(rec: Recorder, **options: object) -> WebGateway:
    return WebGateway(session=Echo, session_args=(rec,), **options)  # type: ignore[arg-type]  # **options


async def test_echo_and_client_close(web_server: str) -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, echo_config(rec)) as gw:
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url) as ws:
                await ws.send_message("hello")
                assert await ws.get_message() == "hello"
                await ws.send_message(b"abc")
                assert await ws.get_message() == b"cba"
                assert node.stats().actors == baseline + 1
                (_, session), *_ = rec.of("connect")
                assert session.path.startswith("/system/web/")
            # the client closed cleanly: on_disconnect ran, the actor is gone
            await rec.wait_for(lambda: bool(rec.of("disconnect")))
            [(_, ref, code)] = rec.of("disconnect")
            assert ref == session
            # hypercorn does not pass on the client's own code; the fast path does
            assert code == (1006 if web_server == "hypercorn" else 1000)
            await wait_actors(node, baseline)


async def test_fifty_concurrent_clients() -> None:
    rec = Recorder()
    answers: dict[int, list[str]] = {}

    async def client(url: str, i: int) -> None:
        async with open_websocket_url(url) as ws:
            got = []
            for j in range(10):
                await ws.send_message(f"{i}:{j}")
            for _ in range(10):
                got.append(await ws.get_message())
            answers[i] = got

    with trio.fail_after(20):
        async with trouper.open_node() as node, open_gateway(node, echo_config(rec)) as gw:
            baseline = node.stats().actors
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(client, gw.ws_url, i)
            assert answers == {i: [f"{i}:{j}" for j in range(10)] for i in range(50)}
            assert len({e[1] for e in rec.of("connect")}) == 50
            await wait_actors(node, baseline)
            assert len(rec.of("disconnect")) == 50


async def test_server_close_reaches_the_client_after_queued_messages() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, echo_config(rec)) as gw:
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url) as ws:
                await ws.send_message("close:bye now")
                assert await ws.get_message() == "last words"  # flushed before the close
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 4000
                assert info.value.reason.reason == "bye now"
            await wait_actors(node, baseline)
            assert rec.of("disconnect")[0][2] == 4000


async def test_a_failing_session_closes_1011_and_nothing_else() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with trouper.open_node() as node, open_gateway(node, echo_config(rec)) as gw:
            baseline = node.stats().actors
            async with (
                open_websocket_url(gw.ws_url) as bystander,
                open_websocket_url(gw.ws_url) as victim,
            ):
                await victim.send_message("boom")
                with pytest.raises(ConnectionClosed) as info:
                    await victim.get_message()
                assert info.value.reason.code == 1011
                await bystander.send_message("still here?")
                assert await bystander.get_message() == "still here?"
                async with open_websocket_url(gw.ws_url) as newcomer:
                    await newcomer.send_message("hi")
                    assert await newcomer.get_message() == "hi"
                async with httpx.AsyncClient() as client:
                    assert (await client.get(gw.url + "/healthz")).status_code == 200
                await wait_actors(node, baseline + 1)  # only the bystander is left
            assert node.kernel.cell_at(gw.ref.path) is not None
            assert node.stats().restarts == 0


async def test_oversize_frame_closes_1009() -> None:
    rec = Recorder()
    with trio.fail_after(10):
        async with (
            trouper.open_node() as node,
            open_gateway(node, echo_config(rec, max_message_size=64 * 1024)) as gw,
        ):
            baseline = node.stats().actors
            async with open_websocket_url(gw.ws_url) as ws:
                await ws.send_message("x" * (64 * 1024))  # at the limit: fine
                assert len(await ws.get_message()) == 64 * 1024
                await ws.send_message("x" * (64 * 1024 + 1))
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1009
            await wait_actors(node, baseline)
            async with open_websocket_url(gw.ws_url) as ws:  # the gateway carries on
                await ws.send_message("ok")
                assert await ws.get_message() == "ok"


async def test_stopping_the_node_closes_every_session_and_the_server() -> None:
    rec = Recorder()
    closed: list[tuple[int, str | None]] = []

    async def client(url: str, task_status: trio.TaskStatus[None]) -> None:
        async with open_websocket_url(url) as ws:
            await ws.send_message("ping")
            assert await ws.get_message() == "ping"
            task_status.started()
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as exc:
                closed.append((exc.reason.code, exc.reason.reason))

    with trio.fail_after(15):
        async with trio.open_nursery() as clients:
            async with trouper.open_node() as node:
                gw = await trouper.web.start_gateway(node, echo_config(rec))
                for _ in range(5):
                    await clients.start(client, gw.ws_url)
                url = gw.url
            # open_node returned: every actor and task is gone
            assert node.stats().actors == 0 and node.stats().tasks == 0
        assert closed == [(1001, None)] * 5
        assert len(rec.of("disconnect")) == 5
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", int(url.rsplit(":", 1)[1]))
