"""A real Prometheus scrapes a two-node cluster's admin endpoints.

``make test`` installs Debian's prometheus when it is missing. The server
runs on a free loopback port with its configuration and storage in a
temporary directory; the assertions go through its own HTTP query API.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

import trouper

COOKIE = b"prometheus-test-cookie"
TRAFFIC = 500

#: The scrape configuration docs/observability.md shows, with the test's
#: targets and a fast interval.
CONFIG = """\
global:
  scrape_interval: 250ms
  evaluation_interval: 250ms
scrape_configs:
  - job_name: trouper
    metrics_path: /metrics
    static_configs:
      - targets: [{targets}]
"""


class Counter(trouper.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def prometheus(tmp: Path, targets: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    binary = shutil.which("prometheus")
    assert binary is not None, "prometheus is missing: `make test` installs it with apt-get"
    config = tmp / "prometheus.yml"
    config.write_text(CONFIG.format(targets=", ".join(f'"{t}"' for t in targets)))
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            while True:
                assert process.poll() is None, f"prometheus exited with {process.returncode}"
                try:
                    if (await http.get("/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)
            yield http
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def query(http: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    reply = (await http.get("/api/v1/query", params={"query": promql})).json()
    assert reply["status"] == "success", reply
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


async def wait_for(http: httpx.AsyncClient, promql: str, ok: Any) -> list[dict[str, Any]]:
    """Query until ``ok(result)``; the caller's fail_after bounds it."""
    while True:
        result = await query(http, promql)
        if ok(result):
            return result
        await trio.sleep(0.1)


def value(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else -1.0


async def test_prometheus_scrapes_the_cluster(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with (
            trouper.open_node(
                "p0", listen="tcp://127.0.0.1:0", cookie=COOKIE, admin="127.0.0.1:0"
            ) as a,
            trouper.open_node(
                "p1",
                listen="tcp://127.0.0.1:0",
                seeds=a.addresses,
                cookie=COOKIE,
                admin="127.0.0.1:0",
            ) as b,
        ):
            await a.wait_for_members(2, timeout=10)
            await b.wait_for_members(2, timeout=10)
            targets = [str(a.admin_address), str(b.admin_address)]
            async with prometheus(tmp_path, targets) as http:
                # Both targets scraped and up.
                await wait_for(http, "sum(up{job='trouper'})", lambda r: value(r) == 2)
                members = await wait_for(
                    http,
                    'trouper_cluster_members{status="up"}',
                    lambda r: len(r) == 2 and all(float(s["value"][1]) == 2 for s in r),
                )
                assert {s["metric"]["instance"] for s in members} == set(targets)
                total = "sum(trouper_messages_total)"
                before = value(await wait_for(http, total, lambda r: value(r) >= 0))
                counter = await b.spawn(Counter, name="counter")
                # Asks on p1 itself, then tells from p0 across the link.
                for i in range(TRAFFIC):
                    assert await counter.ask(i, timeout=5) == i
                remote = await a.lookup("counter", timeout=5)
                for i in range(TRAFFIC):
                    await remote.tell(i)
                assert await remote.ask("done", timeout=5) == "done"
                after = await wait_for(http, total, lambda r: value(r) >= before + 2 * TRAFFIC)
                assert value(after) >= before + 2 * TRAFFIC
                by_class = await query(
                    http, 'trouper_messages_total{actor_class=~".*test_prometheus.Counter"}'
                )
                assert sum(float(s["value"][1]) for s in by_class) >= 2 * TRAFFIC + 1
