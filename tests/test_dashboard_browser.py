"""The live dashboard in headless Chromium, against a two-node cluster.

The browser is Debian's ``chromium`` driven by Playwright's sync API in a
worker thread (as in tests/test_chat_browser.py, whose helpers decide when
the test may skip: never with ``CI=true``); the nodes run on this test's Trio
loop, and the page's steps call back into it (``trio.from_thread``) to kill
an actor through the API and to stop a node.

With ``TROUPER_SCREENSHOTS=1`` the test saves the page, both nodes up, to
``docs/img/dashboard.png`` (the picture in docs/observability.md); otherwise
it leaves the tree alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

import trouper
from test_chat_browser import CHROMIUM, FLAGS, _require_browser

COOKIE = b"dashboard-browser-cookie"
TOKEN = "dashboard-browser-token-0123456789"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "dashboard.png"
STEP_TIMEOUT_MS = 15_000
TEST_TIMEOUT_S = 120


class Worker(trouper.Actor):
    async def receive(self, msg: Any) -> Any:
        return msg


class Slow(trouper.Actor):
    async def receive(self, msg: Any) -> None:
        await trio.sleep(0.02)  # a backlog for the mailbox bar


class Pool(trouper.Actor):
    def __init__(self, n: int) -> None:
        self.n = n

    async def on_start(self) -> None:
        for _ in range(self.n):
            await self.ctx.spawn(Worker)


def _in_browser(url: str, kill: Callable[[str], None], stop_n1: Callable[[], None]) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)

    def row(node: str, path: str) -> Any:
        return page.locator(f'#trees .row.actor[data-node="{node}"][data-path="{path}"]')

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 820})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(url)
            expect(page.locator("#status")).to_have_text("live")
            expect(page.locator("#self")).to_have_text("n0")
            # The cluster: both members up, one link between them.
            for node in ("n0", "n1"):
                status = page.locator(f'#members tr[data-node="{node}"] .status')
                expect(status).to_have_text("up")
            expect(page.locator('#links line[data-link="n0 n1"]')).to_have_count(1)
            # Both trees, n1's through n0's endpoint; the pool aggregated by class.
            expect(row("n0", "/user/w")).to_be_visible()
            expect(row("n1", "/user/clerk")).to_be_visible()
            pool = page.locator('#trees .row.group[data-node="n0"][data-parent="/user/pool"]')
            expect(pool).to_contain_text("20 Worker")
            # Expanded on demand: the server sends the pool's actors one by one.
            row("n0", "/user/pool").locator(".toggle").click()
            expect(page.locator('#trees .row.actor[data-path^="/user/pool/"]')).to_have_count(20)
            # A kill through the API: the restart appears (and flashes).
            expect(row("n0", "/user/w").locator(".restarts")).to_have_text("0")
            kill("/user/w")
            expect(row("n0", "/user/w").locator(".restarts")).to_have_text("1")
            expect(row("n0", "/user/w")).to_have_class(re.compile(r"\brestarted\b"))
            # The buttons: read-only until the token is entered.
            row("n1", "/user/clerk").locator(".name").click()
            expect(page.locator("#detail .f-path")).to_have_text("/user/clerk")
            expect(page.locator("#detail .f-node")).to_have_text("n1")
            expect(page.locator("#restart")).to_be_disabled()
            page.fill("#token", TOKEN)
            page.click("#save-token")
            expect(page.locator("#token-state")).to_have_text("token set")
            expect(page.locator("#restart")).to_be_enabled()
            page.click("#restart")
            expect(page.locator("#action-result")).to_have_text("restart /user/clerk: ok")
            expect(row("n1", "/user/clerk").locator(".restarts")).to_have_text("1")
            expect(page.locator("#detail .f-restarts")).to_have_text("1")
            expect(page.locator("#deadletters li").first).to_contain_text("/user/gone")
            if os.environ.get("TROUPER_SCREENSHOTS") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT))
            # A node stops: the page shows it down.
            stop_n1()
            n1 = page.locator('#members tr[data-node="n1"] .status')
            expect(n1).to_have_text(re.compile(r"^(down|gone)$"))
            expect(page.locator('#trees .node.down[data-node="n1"]')).to_have_count(1)
            expect(page.locator('#links circle[data-node="n1"]')).to_be_visible()
            expect(page.locator("#status")).to_have_text("live")
            # Collapsed again: the pool is one line per class once more.
            row("n0", "/user/pool").locator(".toggle").click()
            expect(page.locator('#trees .row.actor[data-path^="/user/pool/"]')).to_have_count(0)
            expect(pool).to_contain_text("20 Worker")
        finally:
            browser.close()


async def test_the_dashboard_shows_kills_restarts_and_a_node_going_down() -> None:
    _require_browser()
    with trio.fail_after(TEST_TIMEOUT_S):
        async with (
            trouper.open_node(
                "n0",
                listen="tcp://127.0.0.1:0",
                cookie=COOKIE,
                admin="127.0.0.1:0",
                admin_token=TOKEN,
            ) as a,
            httpx.AsyncClient(base_url=f"http://{a.admin_address}") as http,
            trio.open_nursery() as nursery,
        ):
            stop_n1 = trio.Event()

            async def run_n1(task_status: trio.TaskStatus[trouper.Node]) -> None:
                async with trouper.open_node(
                    "n1",
                    listen="tcp://127.0.0.1:0",
                    seeds=a.addresses,
                    cookie=COOKIE,
                    admin="127.0.0.1:0",
                ) as b:
                    task_status.started(b)
                    await stop_n1.wait()

            b: trouper.Node = await nursery.start(run_n1)
            await a.wait_for_members(2, timeout=10)
            await b.wait_for_members(2, timeout=10)
            await a.spawn(Pool, 20, name="pool")
            w = await a.spawn(Worker, name="w")
            await b.spawn(Pool, 3, name="shop")
            await b.spawn(Worker, name="clerk")
            gone = await a.spawn(Worker, name="gone")
            await a.stop(gone)
            await gone.tell("a letter nobody reads")

            async def traffic() -> None:
                # Load for the msg/s column (and the screenshot), not a sync.
                while True:
                    await w.ask("ping")
                    await trio.sleep(0.005)

            nursery.start_soon(traffic)
            slow = await a.spawn(Slow, name="slow")
            for i in range(400):
                slow.tell_nowait(i)

            async def kill(path: str) -> None:
                reply = await http.post(
                    f"/api/actors{path}/kill", headers={"authorization": f"Bearer {TOKEN}"}
                )
                assert reply.status_code == 202

            await trio.to_thread.run_sync(
                _in_browser,
                f"http://{a.admin_address}/dashboard",
                lambda path: trio.from_thread.run(kill, path),
                lambda: trio.from_thread.run_sync(stop_n1.set),
                abandon_on_cancel=True,
            )
            nursery.cancel_scope.cancel()
