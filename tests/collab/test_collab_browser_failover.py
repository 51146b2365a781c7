"""A page fails over: ``kill -9`` of the node whose gateway served it, and
which owns its document, in the middle of editing.

Two ``python -m examples.collab`` processes share one sqlite store. A
Chromium page loaded from node a learns both gateways (``GET
/api/gateways``), types, and then a dies. The page's WebSocket moves to b by
itself (after two closes in a row), the document comes back on b from the
store, the page types on, and a Python client on b reads the page's text:
everything typed, each piece once. The sidebar follows the WebSocket: its
statistics come from b (a cross-origin call b lets in, as a gateway of the
same cluster), and a document created from it opens on b.
"""

from pathlib import Path
from typing import Any

import httpx
import trio
from collab_edge_helpers import FAST_FAILURE_FLAGS, STEP, collab_process
from examples.collab.client import open_client
from test_collab_browser import CHROMIUM, FLAGS, STEP_TIMEOUT_MS, _require_browser, _text

BEFORE = "typed on a. "
AFTER = "typed on b. "


def _edit_across_the_kill(
    url_a: str, url_b: str, node_b: str, kill: Any, read_b: Any
) -> tuple[str, str]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS * 2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS * 2)
            page.goto(f"{url_a}/?user=ada#plans")
            expect(page.locator("#status")).to_have_text("connected")
            expect(page.locator("#server")).to_have_text(url_a)
            page.wait_for_function("window.collab.gateways.urls.length === 2")
            page.click(".cm-content")
            page.keyboard.type(BEFORE)
            page.wait_for_function("window.collab.ytext.toString().length > 0")
            kill()  # a dies, with the page's connection and the document's owner
            expect(page.locator("#server")).to_have_text(url_b)
            expect(page.locator("#status")).to_have_text("connected")
            page.click(".cm-content")
            page.keyboard.press("Control+End")
            page.keyboard.type(AFTER)
            # The page stays open until b has what it typed (a closed page sends nothing).
            seen, final = _text(page), read_b()
            # The sidebar calls b now: a is dead, and b serves the statistics.
            expect(page.locator("#stats")).to_contain_text(f"on node {node_b}")
            page.fill("#new-doc", "after-failover")
            page.click("#create-doc")  # a JSON POST: b answers the CORS preflight
            expect(page.locator("#doc-title")).to_have_text("after-failover")
            expect(page.locator("#status")).to_have_text("connected")
            expect(page.locator("#server")).to_have_text(url_b)
            expect(page.locator("#docs")).to_contain_text("after-failover")
            expect(page.locator("#error")).to_have_text("")
            return seen, final
        finally:
            browser.close()


async def _lets_in(gateway: str, origin: str) -> None:
    """Until ``gateway`` answers ``origin``'s cross-origin calls."""
    async with httpx.AsyncClient() as http:
        while True:
            answer = await http.get(f"{gateway}/api/gateways", headers={"origin": origin})
            if answer.headers.get("access-control-allow-origin") == origin:
                return
            await trio.sleep(0.2)  # another process's registry: no event to wait on


async def test_a_page_fails_over_to_the_other_node(tmp_path: Path) -> None:
    _require_browser()
    cookie = tmp_path / "cookie"
    cookie.write_text("collab-page-failover\n")
    cookie.chmod(0o600)
    common = ["--cookie-file", str(cookie), "--store", f"sqlite:///{tmp_path}/collab.db"]
    common += FAST_FAILURE_FLAGS
    with trio.fail_after(STEP * 6):
        async with collab_process(tmp_path, "a", "--listen", "tcp://127.0.0.1:0", *common) as a:
            seed = a.info["addresses"][0]
            async with collab_process(tmp_path, "b", "--seed", seed, *common) as b:
                url_a, url_b = a.info["http"], b.info["http"]
                await _lets_in(url_b, url_a)  # b knows a's gateway before a dies

                def kill() -> None:
                    a.process.kill()
                    trio.from_thread.run(a.process.wait)

                async def read() -> str:
                    async with open_client([url_b], "plans", "py") as py:
                        await py.synced()
                        await py.wait_for(lambda: AFTER in str(py.text))
                        return str(py.text)

                def read_b() -> str:
                    return trio.from_thread.run(read)

                seen, final = await trio.to_thread.run_sync(
                    _edit_across_the_kill,
                    url_a,
                    url_b,
                    b.node_id,
                    kill,
                    read_b,
                    abandon_on_cancel=True,
                )
                assert seen == final, (seen, final)
                assert final.count(BEFORE) == 1 and final.count(AFTER) == 1, final
                assert sorted(final) == sorted(BEFORE + AFTER), final
