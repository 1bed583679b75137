"""The console's browser tests: Debian's Chromium driven by Playwright, a page whose console errors are collected.

Import it after checking `CHROMIUM` exists (the modules that use it skip without it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from playwright.async_api import Browser, ConsoleMessage, Page

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000


@contextlib.asynccontextmanager
async def open_page(browser: Browser, width: int = 1400, height: int = 900) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page whose console errors (CSP violations among them) and uncaught exceptions are collected.

    It is closed before the server stops: an event stream still open would hold up the server's shutdown.
    """
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    try:
        yield page, problems
    finally:
        await page.close()


def real_problems(problems: list[str]) -> list[str]:
    """Console errors but the failed requests the test causes on purpose (401 before the token, 409s)."""
    return [p for p in problems if "Failed to load resource" not in p]
