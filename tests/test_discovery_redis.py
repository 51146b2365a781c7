"""Discovery through a real Redis (started by ``redis_helper`` on a free
loopback port): nodes find each other with no seeds, a killed node leaves
the table after its TTL and the others forget it, nodes ride out a Redis
restart, and bad discovery URLs are refused naming the problem."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import coredis
import msgspec
import pytest
import trio

import trouper
from redis_helper import RedisServer, free_port

COOKIE = b"discovery-cookie"
FAST = {"heartbeat_interval": 0.1, "acceptable_pause": 0.5, "down_after": 2.0}
TTL = 1.5


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A server of the test's own, which it may stop and start."""
    server = RedisServer()
    server.start()
    yield server
    server.kill()


def url(server: RedisServer, cluster: str) -> str:
    return f"{server.url}?cluster={cluster}&ttl={TTL}"


@asynccontextmanager
async def node(name: str, discovery: str) -> AsyncIterator[trouper.Node]:
    async with trouper.open_node(
        name, cookie=COOKIE, listen="tcp://127.0.0.1:0", discovery=discovery, **FAST
    ) as n:
        yield n


class NodeProcess:
    def __init__(self, process: trio.Process, node_id: str) -> None:
        self.process = process
        self.id = node_id

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


@asynccontextmanager
async def node_process(name: str, discovery: str, tmp: Path) -> AsyncIterator[NodeProcess]:
    """``trouper node --discovery URL`` with no seed, as a real process."""
    cookie = tmp / f"{name}.cookie"
    cookie.write_bytes(COOKIE)
    command = [sys.executable, "-m", "trouper", "node", "--name", name]
    command += ["--listen", "tcp://127.0.0.1:0", "--cookie-file", str(cookie)]
    command += ["--discovery", discovery, "--heartbeat-interval", "0.1"]
    command += ["--acceptable-pause", "0.5", "--down-after", "2.0"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        data = bytearray()
        while b"\n" not in data:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, f"the node process exited: {bytes(data)!r}"
            data += chunk
        assert json.loads(data.split(b"\n", 1)[0])["node"] == name
        yield NodeProcess(process, name)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(10) as scope:
                await process.wait()
            if scope.cancelled_caught:
                process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def up(n: trouper.Node) -> set[str]:
    return {m.node_id for m in n.members() if m.status == "up"}


def known(n: trouper.Node) -> set[str]:
    return {m.node_id for m in n.members()}


async def until(n: trouper.Node, check: Callable[[], bool]) -> None:
    """Wait (under the caller's deadline) until ``check()`` holds; it is
    looked at on every membership change and at least every 0.1 s."""
    assert n.remote is not None
    while not check():
        with trio.move_on_after(0.1):
            await n.remote.wait_changed()


async def polled(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (under the caller's deadline) for a state outside the nodes
    (Redis's table, the log) that no event announces."""
    while True:
        if await check():
            return
        await trio.sleep(0.05)


async def table(server: RedisServer, cluster: str) -> set[str]:
    """The node ids whose entries the table holds now."""
    client = coredis.Redis(host="127.0.0.1", port=server.port)
    async with client:
        keys = await client.keys(f"trouper:{cluster}:member:*")
    return {k.decode().rsplit(":", 1)[1] for k in keys}


async def absent(node_id: str, server: RedisServer, cluster: str) -> bool:
    return node_id not in await table(server, cluster)


async def listed(ids: set[str], server: RedisServer, cluster: str) -> bool:
    return await table(server, cluster) == ids


async def test_three_nodes_find_each_other_through_redis_with_no_seeds(
    redis_session: RedisServer, tmp_path: Path
) -> None:
    where = url(redis_session, "three")
    with trio.fail_after(30):
        async with (
            node("a1", where) as a1,
            node("c9", where) as c9,
            node_process("b1", where, tmp_path),
        ):
            everyone = {"a1", "b1", "c9"}  # a1 dials b1 and c9, b1 dials c9
            await until(a1, lambda: up(a1) == everyone)
            await until(c9, lambda: up(c9) == everyone)
            assert await table(redis_session, "three") == everyone


async def test_other_clusters_are_not_joined(redis_session: RedisServer) -> None:
    with trio.fail_after(20):
        async with (
            node("c1", url(redis_session, "left")) as c1,
            node("c2", url(redis_session, "right")) as c2,
            node("c3", url(redis_session, "left")) as c3,
        ):
            await until(c1, lambda: up(c1) == {"c1", "c3"})
            await until(c3, lambda: up(c3) == {"c1", "c3"})
            assert up(c2) == {"c2"}


async def test_a_killed_node_leaves_the_table_and_is_forgotten(
    redis_session: RedisServer, tmp_path: Path
) -> None:
    where = url(redis_session, "kill")
    with trio.fail_after(40):
        async with (
            node("k1", where) as k1,
            node("k2", where) as k2,
            node_process("zz", where, tmp_path) as victim,
        ):
            await until(k1, lambda: up(k1) == {"k1", "k2", "zz"})
            await until(k2, lambda: up(k2) == {"k1", "k2", "zz"})
            victim.kill()
            await victim.process.wait()
            # Its entry expires after its TTL; then the others forget it
            # altogether (not even listed as down) and stop dialling it.
            await polled(lambda: absent("zz", redis_session, "kill"))
            await until(k1, lambda: known(k1) == {"k1", "k2"})
            await until(k2, lambda: known(k2) == {"k1", "k2"})
            for n in (k1, k2):
                assert n.remote is not None
                assert "zz" not in n.remote.linked  # type: ignore[attr-defined]
            assert await table(redis_session, "kill") == {"k1", "k2"}


async def test_a_graceful_stop_withdraws_the_entry_at_once(redis_session: RedisServer) -> None:
    where = url(redis_session, "bye")
    with trio.fail_after(20):
        async with node("g1", where) as g1:
            async with node("g2", where):
                await until(g1, lambda: up(g1) == {"g1", "g2"})
            assert await table(redis_session, "bye") == {"g1"}


async def test_nodes_recover_when_redis_restarts(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    where = url(redis_server, "restart")
    caplog.set_level(logging.WARNING, "trouper.discovery")
    with trio.fail_after(40):
        async with node("r1", where) as r1, node("r2", where) as r2:
            await until(r1, lambda: up(r1) == {"r1", "r2"})
            redis_server.kill()
            # Both notice the outage (a warning, retried with backoff)...

            async def both_warned() -> bool:
                said = [r.getMessage() for r in caplog.records]
                return all(any(f"node {n}: discovery" in m for m in said) for n in ("r1", "r2"))

            await polled(both_warned)
            # ...and keep their link: the outage kills neither node nor link.
            assert up(r1) == {"r1", "r2"} and up(r2) == {"r1", "r2"}
            await trio.to_thread.run_sync(redis_server.start)  # the same port, empty
            async with node("r3", where) as r3:
                await until(r3, lambda: up(r3) == {"r1", "r2", "r3"})
                await until(r1, lambda: up(r1) == {"r1", "r2", "r3"})
            await polled(lambda: listed({"r1", "r2"}, redis_server, "restart"))


async def test_a_node_opens_while_redis_is_unreachable() -> None:
    where = f"redis://127.0.0.1:{free_port()}/0?cluster=nobody&ttl=1"
    with trio.fail_after(20):
        async with node("u1", where) as u1:
            ref = await u1.spawn(Counter)
            assert await ref.ask(Add(2)) == 2


@trouper.message
class Add(msgspec.Struct):
    n: int


class Counter(trouper.Actor):
    def __init__(self) -> None:
        self.total = 0

    @trouper.handler
    async def add(self, msg: Add) -> int:
        self.total += msg.n
        return self.total


BAD_URLS = [
    (42, "must be a URL string"),
    ("redis://localhost:6379/0", "names no cluster"),
    ("rediss://localhost/0?cluster=x", "did you mean 'redis'"),
    ("etcd://localhost/0?cluster=x", "unknown scheme 'etcd'"),
    ("redis://localhost:99999/0?cluster=x", "malformed"),
    ("redis:///0?cluster=x", "names no Redis host"),
    ("redis://localhost/zero?cluster=x", "database must be a number"),
    ("redis://localhost/0?cluster=x&tll=3", "did you mean 'ttl'"),
    ("redis://u:hunter2@localhost/0?cluster=x&tll=3", "'redis://u:\\*\\*\\*@localhost"),
    ("redis://localhost/0?cluster=x&ttl=-1", "ttl must be"),
    ("redis://localhost/0?cluster=x&ttl=nan", "ttl must be"),
    ("redis://localhost/0?cluster=a%20b", "cluster name"),
    ("mdns://", "cluster name"),
    ("mdns://shop:5353", "takes no port"),
    ("mdns://shop?interface=eth0", "IPv4 address"),
    ("mdns://shop?iface=127.0.0.1", "did you mean 'interface'"),
]


@pytest.mark.parametrize(("bad", "words"), BAD_URLS)
async def test_bad_discovery_urls_name_the_problem(bad: object, words: str) -> None:
    with pytest.raises(trouper.ConfigurationError, match=words.replace("(", r"\(")) as caught:
        async with trouper.open_node(cookie=COOKIE, discovery=bad):  # type: ignore[arg-type]
            pass
    assert "hunter2" not in str(caught.value)  # a password never shows


async def test_discovery_needs_a_cookie() -> None:
    with pytest.raises(trouper.ConfigurationError, match="needs cookie"):
        async with trouper.open_node(discovery="mdns://shop"):
            pass


def test_the_cli_takes_discovery() -> None:
    from trouper.cli import _parser

    args = _parser().parse_args(["node", "--cookie-file", os.devnull, "--discovery", "mdns://shop"])
    assert args.discovery == "mdns://shop"


def test_good_discovery_urls_are_read_in_full() -> None:
    from trouper.services._discovery import MdnsSpec, RedisSpec, parse_discovery

    assert parse_discovery("redis://cache/3?cluster=shop") == RedisSpec("cache", 6379, 3, "shop")
    spec = parse_discovery("redis://ops:s%40cret@10.0.0.9:7000?cluster=a.b-c_d&ttl=2.5")
    assert spec == RedisSpec("10.0.0.9", 7000, 0, "a.b-c_d", 2.5, "ops", "s@cret")
    assert "s@cret" not in repr(spec)  # the password stays out of logs
    assert parse_discovery("mdns://shop") == MdnsSpec("shop")
    assert parse_discovery("mdns://shop?interface=127.0.0.1") == MdnsSpec("shop", "127.0.0.1")
