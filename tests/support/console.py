"""The console's repair tests in a real browser: a server with some definitions, a session with the token, the
console open on it. Import it after checking that Chromium exists (it imports Playwright, as browser.py does)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, expect

from procengine.store.embedded import RedisServer
from tests.support.browser import open_page
from tests.support.servers import Server, call, serving

TOKEN = "tok-console"


@asynccontextmanager
async def console_with(
    redis_server: RedisServer, prefix: str, browser: Browser, definitions: Iterable[dict[str, Any]], *flags: str
) -> AsyncIterator[tuple[Server, aiohttp.ClientSession, Page, list[str]]]:
    """A server (examples.handlers, `flags`) with `definitions` registered, a session, and the console open."""
    async with (
        serving(redis_server.url, prefix) as start_server,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session,
    ):
        server = await start_server("--handlers", "examples.handlers", "--token", f"{TOKEN}=acme", *flags)
        for definition in definitions:
            await call(session, server, "POST", "/processes", json=definition)
        async with open_page(browser) as (page, problems):
            await page.goto(server.url + "/")
            await page.fill("#token", TOKEN)
            await page.click("#token-form button[type=submit]")
            await expect(page.locator("#view-list")).to_be_visible()
            yield server, session, page, problems


async def start(session: aiohttp.ClientSession, server: Server, key: str, variables: dict[str, Any]) -> int:
    started = await call(
        session, server, "POST", "/executions/processes", json={"processKey": key, "variables": variables}
    )
    return int(started["executionID"])


async def open_execution(page: Page, execution: int, status: str) -> None:
    await page.evaluate(f"location.hash = '#/executions/{execution}'")
    await expect(page.locator("#exec-status")).to_have_text(status)


SHIPPING = {
    "key": "shipping",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "approve", "type": "wait-signal", "signal": "approval", "into": "approval", "next": "bill"},
                {"key": "bill", "type": "set-variable", "set": {"total": "amount * 2.0"}, "next": "ship"},
                {"key": "ship", "type": "wait-signal", "signal": "shipped", "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""The time-travel tests' process: waits for an approval, computes `total` from `amount`, then waits again (so it
stays live to go back in)."""


def shipping_console(
    redis_server: RedisServer, prefix: str, browser: Browser, *flags: str
) -> AbstractAsyncContextManager[tuple[Server, aiohttp.ClientSession, Page, list[str]]]:
    return console_with(redis_server, prefix, browser, (SHIPPING,), *flags)


def path(execution: int, tail: str = "") -> str:
    return f"/executions/processes/{execution}{tail}"


async def kept(session: aiohttp.ClientSession, server: Server, execution: int) -> list[dict[str, Any]]:
    """The execution's kept checkpoints (first page), newest first."""
    page: dict[str, Any] = await call(session, server, "GET", path(execution, "/checkpoints"))
    items: list[dict[str, Any]] = page["items"]
    return items
