"""Two people chat in headless Chromium: the page, the gateway and the rooms
end to end.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``) driven by
Playwright's sync API in a worker thread, while the chat server runs on this
test's Trio loop. ``make test`` installs both (see the ``browser`` target).
Without the browser, the test is skipped only where apt cannot install it
(not root, or no apt-get); with ``CI=true`` it never skips. After the exchange
it saves ada's page to ``docs/images/chat.png``, the screenshot of docs/chat.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio
from examples.chat._server import RoomDirectory, gateway_config

import trouper
from trouper.web import open_gateway

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "chat.png"
STEP_TIMEOUT_MS = 10_000  # every Playwright action and wait
TEST_TIMEOUT_S = 90  # the whole exchange, browser start included


def _missing() -> str | None:
    """Why the browser test cannot run here, or None if it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian package 'chromium'; `make browser` installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the 'playwright' package is missing (`make browser` installs it)"
    return None


def _apt_usable() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def _require_browser() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser test: {reason}")
    if not CHROMIUM.exists() and not _apt_usable():
        pytest.skip(f"{reason}, and apt is unusable here (not root or no apt-get)")
    pytest.fail(reason)


def _chat_in_browsers(base_url: str, profiles: Path) -> list[str]:
    """ada and bo join the lobby and talk; return ada's log lines."""
    from playwright.sync_api import Page, expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)

    def join(page: Page, user: str) -> None:
        page.goto(base_url)
        expect(page.locator("#status")).to_have_text("connected")
        page.fill("#user", user)
        expect(page.locator("#room")).to_have_value("lobby")
        page.click("#join")
        expect(page.locator("#say")).to_be_enabled()
        expect(page.locator("#rooms button.active")).to_have_text("# lobby")

    def say(page: Page, text: str) -> None:
        page.fill("#say", text)
        page.press("#say", "Enter")
        expect(page.locator("#say")).to_have_value("")

    with sync_playwright() as pw:
        contexts: list[Any] = []
        try:
            for user in ("ada", "bo"):  # one fresh profile (user-data-dir) each
                context = pw.chromium.launch_persistent_context(
                    profiles / user,
                    executable_path=str(CHROMIUM),
                    headless=True,
                    args=FLAGS,
                    viewport={"width": 820, "height": 420},
                    timeout=30_000,
                )
                context.set_default_timeout(STEP_TIMEOUT_MS)
                contexts.append(context)
            ada, bo = (
                context.pages[0] if context.pages else context.new_page() for context in contexts
            )

            join(ada, "ada")
            expect(ada.locator("#members")).to_have_text("online: ada")
            join(bo, "bo")
            expect(ada.locator("#log .presence")).to_have_text(["bo is online"])
            expect(ada.locator("#members")).to_have_text("online: ada, bo")
            expect(bo.locator("#members")).to_have_text("online: ada, bo")

            say(ada, "hello bo, this page talks to a room actor")
            expect(bo.locator("#log .msg")).to_have_text(
                ["ada hello bo, this page talks to a room actor"]
            )
            expect(bo.locator("#log .msg b")).to_have_text(["ada"])
            say(bo, "hi ada! <b>not bold</b>")
            expected = [
                "ada hello bo, this page talks to a room actor",
                "bo hi ada! <b>not bold</b>",
            ]
            expect(ada.locator("#log .msg")).to_have_text(expected)
            expect(bo.locator("#log .msg")).to_have_text(expected)
            expect(ada.locator("#log .msg b")).to_have_text(["ada", "bo"])  # text, not markup

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            ada.locator("#say").blur()  # no focus ring in the picture
            ada.screenshot(path=str(SCREENSHOT))
            return [str(line) for line in ada.locator("#log > div").all_inner_texts()]
        finally:
            for context in contexts:
                context.close()


async def test_two_users_chat_in_chromium(tmp_path: Path) -> None:
    _require_browser()
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trouper.open_node() as node:
            directory = await node.spawn(
                RoomDirectory, f"memory://browser-{tmp_path.name}", name="chat-rooms"
            )
            async with open_gateway(node, gateway_config(directory)) as gateway:
                lines = await trio.to_thread.run_sync(
                    _chat_in_browsers, f"{gateway.url}/", tmp_path, abandon_on_cancel=True
                )
    assert lines == [
        "bo is online",
        "ada hello bo, this page talks to a room actor",
        "bo hi ada! <b>not bold</b>",
    ]
    assert SCREENSHOT.stat().st_size > 1000
