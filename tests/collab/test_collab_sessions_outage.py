"""A Redis outage fails calls, not the service: while the server is away,
calls raise the retryable ``StoreUnavailable`` and the sweep only logs;
once it is back the service works again without a restart. And a server
that forgot its scripts (``SCRIPT FLUSH``) gets them again (``EVAL`` after
``NOSCRIPT``)."""

import logging

import pytest
import trio
from examples.collab.sessions import SessionService, spawn_session_service

import trouper
import trouper.pools
from redis_helper import RedisServer
from trouper.stores import StoreUnavailable


async def test_a_redis_outage_fails_calls_not_the_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="examples.collab.sessions")
    server = RedisServer()
    server.start()
    try:
        url = f"{server.url}?prefix=outage:&command_timeout=1&checkout_timeout=1"
        with trio.fail_after(30):
            async with trouper.open_node() as node:
                service = await spawn_session_service(node, store_url=url, sweep_interval=0.1)
                sessions = node.proxy(SessionService, timeout=10)
                record = await sessions.create("ada", "c", ttl=60.0)
                server.kill()
                # Each call fails within about its checkout timeout (1 s): the
                # sweeps that fail meanwhile (every 0.1 s) hold none of them up.
                with trio.fail_after(2.5), pytest.raises(StoreUnavailable) as failed:
                    await sessions.heartbeat(record.id)
                assert failed.value.is_retryable
                with trio.fail_after(2.5), pytest.raises(StoreUnavailable):
                    await sessions.create("bo", "c2")
                with trio.fail_after(2.5), pytest.raises(StoreUnavailable):
                    await sessions.delete(record.id)  # not deleted: the session goes on
                await node.lookup(f"session:{record.id}")
                assert (await sessions.get(record.id)).id == record.id  # from its actor
                # Unavailability counts against the proxy's breaker (5 in a
                # row open it): then calls fail fast, without waiting.
                for _ in range(5):
                    with pytest.raises((StoreUnavailable, trouper.CircuitOpen)):
                        await sessions.heartbeat(record.id)
                with trio.fail_after(0.5), pytest.raises(trouper.CircuitOpen):
                    await sessions.heartbeat(record.id)
                while "session sweep failed" not in caplog.text:  # noqa: ASYNC110 - a log line
                    await trio.sleep(0.05)  # the sweep's failure is logged, and it goes on
                server.start()  # empty: this server keeps nothing across a restart
                # The same service (not restarted) works again. (A proxy with
                # other breaker settings has breakers of its own: no need to
                # wait out the first one's 5 s.)
                sessions = node.proxy(
                    SessionService, timeout=10, breaker=trouper.Breaker(reset_after=0.2)
                )
                with trio.fail_after(10):
                    while True:
                        try:
                            fresh = await sessions.create("bo", "c2")
                            break
                        except (StoreUnavailable, trouper.CircuitOpen):
                            await trio.sleep(0.1)
                assert (await sessions.heartbeat(fresh.id)).id == fresh.id
                assert await node.lookup("collab-sessions") == service
                # ada's record went with the old server: her heartbeat ends
                # the session instead of resurrecting it.
                with pytest.raises(trouper.ActorNotFound):
                    await sessions.heartbeat(record.id)
    finally:
        server.kill()


async def test_scripts_flushed_from_the_server_are_sent_again(redis_url: str) -> None:
    url = redis_url
    with trio.fail_after(10):
        async with trouper.open_node() as node, trouper.pools.redis(url) as raw:
            await spawn_session_service(node, store_url=url)
            sessions = node.proxy(SessionService)
            record = await sessions.create("ada", "c")
            await raw.execute("SCRIPT", "FLUSH")
            assert (await sessions.heartbeat(record.id)).id == record.id
            assert (await sessions.create("bo", "d")).user == "bo"
