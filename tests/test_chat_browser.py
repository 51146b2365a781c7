"""Two people chat in headless Chromium: the page, the gateway and the rooms
end to end.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``) driven by
Playwright's sync API in a worker thread, while the chat server runs on this
test's Trio loop. ``make test`` installs both (see the ``browser`` target).
Without the browser, the test is skipped only where apt cannot install it
(not root, or no apt-get); with ``CI=true`` it never skips. After the exchange
it saves ada's page to ``docs/images/chat.png``, the screenshot of docs/chat.md.

Then the page's hardening, in the same two browsers: timestamps and one's own
messages marked, a long word wrapped, a message typed while disconnected
shown pending and sent once after the reconnect, the byte counter and an
over-long message refused with the text kept, a refused join that adds no
room and leaves the next reload alone, name and rooms remembered across a
reload, the Leave button, the development-mode notice and the favicon. bo's
page with an error showing is saved as ``docs/images/chat-errors.png``.
A third test opens the page in JWT mode with a token in its address.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import trio
from examples.chat._auth import issue_token
from examples.chat._server import ChatSettings, RoomDirectory, gateway_config

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
ERRORS_SCREENSHOT = SCREENSHOT.with_name("chat-errors.png")
HHMM = r"\d\d:\d\d"
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
                [re.compile(f"^{HHMM} ada hello bo, this page talks to a room actor$")]
            )
            expect(bo.locator("#log .msg b")).to_have_text(["ada"])
            say(bo, "hi ada! <b>not bold</b>")
            expected = [
                re.compile(f"^{HHMM} ada hello bo, this page talks to a room actor$"),
                re.compile(f"^{HHMM} bo hi ada! <b>not bold</b>$"),
            ]
            expect(ada.locator("#log .msg")).to_have_text(expected)
            expect(bo.locator("#log .msg")).to_have_text(expected)
            expect(ada.locator("#log .msg b")).to_have_text(["ada", "bo"])  # text, not markup
            expect(ada.locator("#log .msg.mine b")).to_have_text(["ada"])  # her own look different
            expect(bo.locator("#log .msg.mine b")).to_have_text(["bo"])

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            ada.locator("#say").blur()  # no focus ring in the picture
            ada.screenshot(path=str(SCREENSHOT))
            lines = [str(line) for line in ada.locator("#log > div").all_inner_texts()]
            _page_fixes(ada, bo, base_url)
            return lines
        finally:
            for context in contexts:
                context.close()


def _page_fixes(ada: Any, bo: Any, base_url: str) -> None:
    """The page's hardening, on the pages of ``_chat_in_browsers``."""
    from playwright.sync_api import expect

    # The development mode is said plainly; the favicon is served.
    expect(ada.locator("#mode")).to_contain_text("development mode: names are not authenticated")
    expect(ada.locator("link[rel=icon]")).to_have_attribute("href", "/favicon.svg")
    icon = ada.request.get(base_url + "favicon.svg")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg")

    # A long word wraps: the log never scrolls sideways.
    ada.fill("#say", "w" * 600)
    ada.press("#say", "Enter")
    expect(bo.locator("#log .msg")).to_have_count(3)
    assert bo.evaluate("$('log').scrollWidth <= $('log').clientWidth")

    # Typed while the connection is down: pending, then sent once on reconnect.
    pending = bo.evaluate(
        """() => {
            state.ws.close();
            $("say").value = "typed while offline";
            $("say").dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
            return document.querySelectorAll("#log .msg.pending").length;
        }"""
    )
    assert pending == 1
    expect(bo.locator("#status")).to_have_text("connected")
    expect(bo.locator("#log .msg.pending")).to_have_count(0)
    offline = re.compile(f"^{HHMM} bo typed while offline$")
    expect(bo.locator("#log .msg").last).to_have_text(offline)
    expect(ada.locator("#log .msg").last).to_have_text(offline)
    expect(ada.locator("#log .msg", has_text="typed while offline")).to_have_count(1)
    expect(bo.locator("#log .msg", has_text="typed while offline")).to_have_count(1)

    # The counter counts UTF-8 bytes, like the server; too long is refused
    # on the page, and what was typed stays.
    bo.fill("#say", "héllo")
    expect(bo.locator("#count")).to_have_text("6 / 4096")
    too_long = "é" * 2049
    bo.fill("#say", too_long)
    expect(bo.locator("#count")).to_have_text("4098 / 4096")
    expect(bo.locator("#count")).to_have_class("over")
    bo.press("#say", "Enter")
    expect(bo.locator("#error")).to_contain_text("a message holds at most 4096 bytes")
    expect(bo.locator("#say")).to_have_value(too_long)

    # A refused join adds no room, keeps what was typed, and does not come
    # back after a reload.
    ada.fill("#room", "ops")
    ada.click("#join")
    expect(ada.locator("#rooms button")).to_have_text(["# lobby", "# ops"])
    bo.fill("#user", "ada")
    bo.fill("#room", "ops")
    bo.click("#join")
    expect(bo.locator("#error")).to_contain_text("the name 'ada' is taken in room 'ops'")
    expect(bo.locator("#rooms button")).to_have_text(["# lobby"])
    expect(bo.locator("#user")).to_have_value("ada")
    bo.locator("#say").blur()
    bo.screenshot(path=str(ERRORS_SCREENSHOT))

    # The name and the rooms survive a reload.
    bo.reload()
    expect(bo.locator("#user")).to_have_value("bo")
    expect(bo.locator("#rooms button")).to_have_text(["# lobby"])
    expect(bo.locator("#log .msg", has_text="typed while offline")).to_have_count(1)

    # Leave: the room goes from the list, and the others see it.
    ada.click("#rooms button >> text=# lobby")
    ada.click("#leave")
    expect(ada.locator("#rooms button")).to_have_text(["# ops"])
    expect(bo.locator("#log .presence").last).to_have_text("ada is offline")
    ada.reload()
    expect(ada.locator("#rooms button")).to_have_text(["# ops"])


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
    assert [re.sub(f"^{HHMM} ", "", line) for line in lines] == [
        "bo is online",
        "ada hello bo, this page talks to a room actor",
        "bo hi ada! <b>not bold</b>",
    ]
    assert SCREENSHOT.stat().st_size > 1000
    assert ERRORS_SCREENSHOT.stat().st_size > 1000


def _jwt_page(base_url: str, token: str, profiles: Path) -> None:
    """The page in JWT mode: the token from the address, the name from it."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profiles / "jwt",
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            timeout=30_000,
        )
        try:
            context.set_default_timeout(STEP_TIMEOUT_MS)
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(f"{base_url}#token={token}")
            expect(page.locator("#mode")).to_have_text("signed in as ada (token)")
            expect(page.locator("#user")).to_have_value("ada")
            expect(page.locator("#user")).not_to_be_editable()
            assert "token" not in page.url  # taken out of the address bar
            page.click("#join")
            expect(page.locator("#rooms button")).to_have_text(["# lobby"])
            expect(page.locator("#members")).to_have_text("online: ada")
            page.reload()  # the token and the room are remembered
            expect(page.locator("#mode")).to_have_text("signed in as ada (token)")
            expect(page.locator("#rooms button")).to_have_text(["# lobby"])
        finally:
            context.close()


async def test_the_page_in_jwt_mode(tmp_path: Path) -> None:
    _require_browser()
    secret = b"a-browser-test-secret-of-32-bytes!!"
    settings = ChatSettings(jwt_secret=secret)
    with trio.fail_after(TEST_TIMEOUT_S):
        async with trouper.open_node() as node:
            directory = await node.spawn(
                RoomDirectory, f"memory://browser-jwt-{tmp_path.name}", name="chat-rooms"
            )
            config = gateway_config(directory, settings=settings)
            async with open_gateway(node, config) as gateway:
                await trio.to_thread.run_sync(
                    _jwt_page,
                    f"{gateway.url}/",
                    issue_token("ada", secret),
                    tmp_path,
                    abandon_on_cancel=True,
                )
