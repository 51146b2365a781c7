"""``trouper.transports.ConnectionPool``: sessions lent and returned, sized
by the pools' one policy, checked while idle, replaced when broken."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from transport_helpers import Pki, eventually

from trouper import ConfigurationError, ConnectionLost, PoolClosed, PoolPolicy, PoolTimeout
from trouper.transports import ConnectionPool, MessageServer, MessageSession, serve

TIMEOUT = 20


class Peer:
    """An echo server that can end any of its sessions on demand."""

    def __init__(self) -> None:
        self.sessions: dict[str, MessageSession] = {}

    async def handle(self, session: MessageSession) -> None:
        self.sessions[session.id] = session
        try:
            async for message in session:
                if message == b"bye":
                    return  # the server closes the session: the client sees the end
                await session.send(message)
        finally:
            del self.sessions[session.id]


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Peer, MessageServer]]:
    peer = Peer()
    async with serve("tcp://127.0.0.1:0", peer.handle) as server:
        yield peer, server


async def echo_once(session: MessageSession, data: bytes) -> None:
    await session.send(data)
    assert await session.receive() == data


async def test_a_returned_session_is_lent_again(peer: tuple[Peer, MessageServer]) -> None:
    _, server = peer
    with trio.fail_after(TIMEOUT):
        async with ConnectionPool(server.url, min=1, max=4) as pool:
            assert pool.status().size == 1
            async with pool.checkout() as first:
                await echo_once(first, b"one")
                assert pool.status().active == 1
            async with pool.checkout() as again:
                await echo_once(again, b"two")
            assert again is first
            assert pool.status().active == 0 and pool.status().idle == 1


@pytest.mark.parametrize("scheme", ["tcp", "tls", "ws", "wss", "quic"])
async def test_every_scheme_pools(scheme: str, pki: Pki) -> None:
    secure = scheme in ("tls", "wss", "quic")
    url = f"{scheme}://127.0.0.1:0" + ("/pool" if scheme in ("ws", "wss") else "")
    peer = Peer()
    with trio.fail_after(TIMEOUT):
        async with (
            serve(url, peer.handle, tls=pki.config("server") if secure else None) as server,
            ConnectionPool(
                server.url, min=2, max=2, tls=pki.config("client") if secure else None
            ) as pool,
        ):
            async with pool.checkout() as a, pool.checkout() as b:
                assert a is not b
                await echo_once(a, b"a")
                await echo_once(b, b"b")
            assert pool.status().size == 2


async def test_concurrent_demand_grows_the_pool_up_to_max(
    peer: tuple[Peer, MessageServer],
) -> None:
    _, server = peer
    inside = 0
    most = 0
    release = trio.Event()

    async def borrower(pool: ConnectionPool) -> None:
        nonlocal inside, most
        async with pool.checkout(timeout=10) as session:
            inside += 1
            most = max(most, inside)
            await echo_once(session, b"hi")
            await release.wait()
            inside -= 1

    policy = PoolPolicy(min=1, max=6, grow_interval=0.0)
    with trio.fail_after(TIMEOUT):
        async with ConnectionPool(server.url, policy=policy) as pool:
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(borrower, pool)
                await eventually(lambda: pool.status().active == 6)
                status = pool.status()
                assert status.size == 6 and status.waiters == 4 and status.expansions >= 1
                release.set()
            assert most == 6 and pool.status().size <= 6


async def test_a_session_the_peer_ended_is_replaced(peer: tuple[Peer, MessageServer]) -> None:
    _, server = peer
    with trio.fail_after(TIMEOUT):
        async with ConnectionPool(server.url, min=1, max=1) as pool:
            async with pool.checkout() as session:
                await session.send(b"bye")
                assert await session.receive() is None
            old = session.id
            await eventually(lambda: pool.status().idle == 1)
            async with pool.checkout() as fresh:
                assert fresh.id != old
                await echo_once(fresh, b"works")
            assert session.closed


async def test_a_transport_error_in_the_block_discards_the_session(
    peer: tuple[Peer, MessageServer],
) -> None:
    _, server = peer
    with trio.fail_after(TIMEOUT):
        async with ConnectionPool(server.url, min=1, max=1) as pool:
            with pytest.raises(ConnectionLost):
                async with pool.checkout() as session:
                    raise ConnectionLost("the caller saw the link fail")
            async with pool.checkout() as fresh:
                assert fresh is not session
                await echo_once(fresh, b"ok")


async def test_the_health_check_replaces_an_idle_session_the_server_closed(
    peer: tuple[Peer, MessageServer],
) -> None:
    server_side, server = peer
    with trio.fail_after(TIMEOUT):
        async with ConnectionPool(server.url, min=1, max=1, health_every=0.05) as pool:
            async with pool.checkout() as session:
                await echo_once(session, b"x")
            await eventually(lambda: len(server_side.sessions) == 1)
            for s in list(server_side.sessions.values()):
                await s.aclose()
            await eventually(lambda: session.closed)  # found by the check, and closed
            async with pool.checkout() as fresh:
                assert fresh is not session
                await echo_once(fresh, b"y")


async def test_checkout_timeout_and_drain(peer: tuple[Peer, MessageServer]) -> None:
    _, server = peer
    with trio.fail_after(TIMEOUT):
        async with ConnectionPool(server.url, min=1, max=1) as pool:
            async with pool.checkout():
                with pytest.raises(PoolTimeout) as info:
                    async with pool.checkout(timeout=0.05):
                        pass
                assert info.value.is_retryable and isinstance(info.value, TimeoutError)
            await pool.drain(timeout=1)
            with pytest.raises(PoolClosed):
                async with pool.checkout():
                    pass


async def test_bad_arguments_and_an_unreachable_url() -> None:
    with pytest.raises(ConfigurationError, match="policy"):
        ConnectionPool("tcp://127.0.0.1:1", min=1, policy=PoolPolicy())
    with pytest.raises(ConfigurationError, match="min"):
        ConnectionPool("tcp://127.0.0.1:1", min=3, max=2)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # a port nobody listens on
    with trio.fail_after(TIMEOUT), pytest.raises(ConnectionLost) as info:
        async with ConnectionPool(f"tcp://127.0.0.1:{port}", min=1, max=2):
            pass
    assert info.value.operation == "connect"
