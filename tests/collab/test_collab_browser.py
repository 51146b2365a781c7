"""Two people edit one document in headless Chromium: the page (Yjs,
y-websocket's client and CodeMirror, bundled by esbuild), the gateway's Yjs
WebSocket, the hubs and the DocumentActor, end to end.

The browser is Debian's ``chromium`` driven by Playwright's sync API in a
worker thread, while the collab node runs on this test's Trio loop, as in
tests/test_chat_browser.py. Skipped only when chromium is absent and CI is
not set. ada and bo type into the same paragraph at once (their keystrokes
interleaved, each page ahead of what it has heard from the other) and end
with identical text, each typed piece exactly once; each sees the other in
the presence list and the other's named cursor in the editor. Then the
history: a named snapshot saved from the sidebar, more typing, and a
restore that brings both pages back to the saved text. A Python client
opened afterwards reads the same text. Screenshots: docs/images/collab.png
and docs/images/collab-history.png (embedded in docs/collab.md).
"""

import os
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from collab_edge_helpers import collab_node
from examples.collab._app import BUNDLE
from examples.collab.client import open_client

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
STEP_TIMEOUT_MS = 10_000
TEST_TIMEOUT_S = 90
ADA = ["ada-1 ", "ada-2 ", "ada-3 ", "ada-4 ", "ada-5 "]
BO = ["bo-1 ", "bo-2 ", "bo-3 ", "bo-4 ", "bo-5 "]
START = "Meeting notes: we agree that  and that is final."
SPOT = START.index("that  and") + len("that ")  # both type here


def _require_browser() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (`make browser` installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the 'playwright' package is missing"
    if reason is None:
        if not BUNDLE.exists():
            pytest.fail(f"{BUNDLE} is missing: `make collab-assets` builds it")
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


def _subsequence(needle: str, haystack: str) -> bool:
    rest = iter(haystack)
    return all(c in rest for c in needle)


def _text(page: Any) -> str:
    return str(page.evaluate("window.collab.ytext.toString()"))


def _converge(pages: list[Any], want: Any = None) -> str:
    """Poll (bounded) until every page shows the same text (``want`` if given)."""
    for _ in range(STEP_TIMEOUT_MS // 50):
        texts = {_text(page) for page in pages}
        if len(texts) == 1 and (want is None or want(next(iter(texts)))):
            return texts.pop()
        pages[0].wait_for_timeout(50)
    raise AssertionError(f"the pages did not converge: {[_text(p) for p in pages]}")


def _edit_in_browsers(base_url: str) -> str:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            pages = []
            for user in ("ada", "bo"):  # one context each: two people, two profiles
                context = browser.new_context(viewport={"width": 900, "height": 420})
                context.set_default_timeout(STEP_TIMEOUT_MS)
                page = context.new_page()
                page.goto(f"{base_url}?user={user}#minutes")
                expect(page.locator("#status")).to_have_text("connected")
                pages.append(page)
            ada, bo = pages

            ada.click(".cm-content")
            ada.keyboard.type(START)
            _converge(pages, lambda text: text == START)
            for page in pages:  # both carets in the same paragraph, at the same spot
                page.click(".cm-content")
                page.keyboard.press("Control+Home")
                for _ in range(SPOT):
                    page.keyboard.press("ArrowRight")
            for mine, theirs in zip(ADA, BO, strict=True):  # at once: interleaved keystrokes
                ada.keyboard.type(mine)
                bo.keyboard.type(theirs)
            typed = "".join(ADA) + "".join(BO)
            final = _converge(pages, lambda text: len(text) >= len(START) + len(typed))
            # Nothing lost, nothing doubled; each one's keystrokes in their order
            # (a remote insert at one's caret may land inside one's own run).
            assert sorted(final) == sorted(START + typed), final
            assert final.startswith(START[:SPOT]) and final.endswith(START[SPOT:])
            assert _subsequence("".join(ADA), final) and _subsequence("".join(BO), final)

            # Presence: each lists both, itself first; the other's cursor has its name.
            expect(ada.locator("#presence li")).to_have_text(["ada (you)", "bo"])
            expect(bo.locator("#presence li")).to_have_text(["bo (you)", "ada"])
            expect(ada.locator(".cm-ySelectionInfo")).to_have_text("bo")
            expect(bo.locator(".cm-ySelectionInfo")).to_have_text("ada")
            expect(ada.locator("#stats")).to_contain_text(
                re.compile(r"version [1-9]\d* · \d+ bytes · 2 editing")
            )
            ada.mouse.move(1, 1)
            ada.screenshot(path=str(IMAGES / "collab.png"))

            # History: save a named snapshot, type on, restore it.
            ada.fill("#snapshot-name", "agreed")
            ada.click("#save-snapshot")
            expect(ada.locator("#history .restore")).to_have_count(1)
            bo.keyboard.type("a second thought ")
            after = _converge(pages, lambda text: "a second thought" in text)
            assert after != final
            ada.click("#history .restore")
            restored = _converge(pages, lambda text: text == final)
            expect(ada.locator("#error")).to_have_text("")
            ada.screenshot(path=str(IMAGES / "collab-history.png"))

            # The sidebar lists documents; creating one opens it.
            ada.fill("#new-doc", "minutes-2")
            ada.click("#create-doc")
            expect(ada.locator("#doc-title")).to_have_text("minutes-2")
            expect(ada.locator("#docs li.active")).to_have_text("minutes-2")
            expect(ada.locator("#docs li", has_text="minutes")).to_have_count(2)
            return restored
        finally:
            browser.close()


async def test_two_browsers_edit_one_paragraph(tmp_path: Path) -> None:
    _require_browser()
    IMAGES.mkdir(parents=True, exist_ok=True)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with collab_node(tmp_path / "collab.db") as (_, gateway):
            final = await trio.to_thread.run_sync(
                _edit_in_browsers, f"{gateway.url}/", abandon_on_cancel=True
            )
            async with open_client([gateway.url], "minutes", "py") as py:
                await py.synced()
                assert str(py.text) == final
    assert (IMAGES / "collab.png").stat().st_size > 1000
    assert (IMAGES / "collab-history.png").stat().st_size > 1000


def _page_with_pycrdt(base_url: str) -> str:
    """One page types, waits for pycrdt's insertion, and returns its text."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(f"{base_url}?user=ada#mixed")
            expect(page.locator("#status")).to_have_text("connected")
            page.click(".cm-content")
            page.keyboard.type("typed in chromium.")
            page.wait_for_function("window.collab.ytext.toString().includes('pycrdt')")
            return _text(page)
        finally:
            browser.close()


async def test_pycrdt_provider_and_chromium_converge(tmp_path: Path) -> None:
    """pycrdt's own Provider (pycrdt.websocket's client channel, unchanged)
    and a Chromium page edit one document at the same time."""
    import httpx
    import pycrdt
    from httpx_ws import aconnect_ws
    from pycrdt.websocket.websocket import HttpxWebsocket

    _require_browser()
    with trio.fail_after(TEST_TIMEOUT_S):
        async with collab_node(tmp_path / "collab.db") as (_, gateway):
            doc: pycrdt.Doc = pycrdt.Doc()
            text = doc.get("content", type=pycrdt.Text)
            changed = trio.Event()

            def wake(_: object) -> None:
                changed.set()

            doc.observe(wake)
            url = f"{gateway.ws_url}?doc=mixed&user=pycrdt"
            async with (
                httpx.AsyncClient() as http,
                aconnect_ws(url, http) as ws,
                pycrdt.Provider(doc, HttpxWebsocket(ws, "mixed")) as provider,
                trio.open_nursery() as nursery,
            ):
                await provider.synced.wait()
                seen: list[str] = []

                async def browse() -> None:
                    page_text = await trio.to_thread.run_sync(
                        _page_with_pycrdt, f"{gateway.url}/", abandon_on_cancel=True
                    )
                    seen.append(page_text)

                nursery.start_soon(browse)
                while "typed in chromium." not in str(text):
                    changed = trio.Event()
                    await changed.wait()
                text.insert(0, "pycrdt was here: ")
            assert seen == [str(text)] == ["pycrdt was here: typed in chromium."]
