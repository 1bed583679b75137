"""The execution page says per lane why it is not moving (the status's `blockedOn`), in a real browser."""

from __future__ import annotations

import os

import aiohttp
import pytest

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, open_page, real_problems
from tests.support.servers import call, serving

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, expect

TOKEN = "tok-console"
pytestmark = pytest.mark.timeout(120)


async def test_the_execution_page_shows_a_blocked_line_per_lane(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with (
        serving(redis_server.url, prefix) as start,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session,
    ):
        server = await start("--register", "examples/demo.yaml", "--token", f"{TOKEN}=acme")
        started = await call(session, server, "POST", "/executions/processes", json={"processKey": "demo"})
        execution = int(started["executionID"])
        async with open_page(browser) as (page, problems):
            await page.goto(server.url + "/")
            await page.fill("#token", TOKEN)
            await page.click("#token-form button[type=submit]")
            await page.evaluate(f"location.hash = '#/executions/{execution}'")

            # running: the approval thread waits for its signal, main for its first delay
            blocked = page.locator("#exec-blocked")
            await expect(blocked).to_be_visible()
            approval = blocked.locator('li[data-lane="approval"]')
            await expect(approval).to_have_attribute("data-kind", "signal")
            await expect(approval).to_contain_text("approve waits for signal 'approval' (0 buffered)")
            await expect(blocked.locator('li[data-lane="main"]')).to_contain_text("first_wait is delayed until")

            # paused from elsewhere: every lane says who paused it, why, and what it waits for then
            await call(session, server, "POST", f"/executions/processes/{execution}/pause", json={"reason": "audit"})
            await expect(approval).to_have_attribute("data-kind", "paused")
            await expect(approval).to_contain_text("is paused by acme since")
            await expect(approval).to_contain_text(": audit; then it waits for signal 'approval'")
            await expect(blocked.locator('li[data-lane="main"]')).to_contain_text("ms left)")

            # over: no line
            await call(session, server, "POST", f"/executions/processes/{execution}/cancel")
            await expect(page.locator("#exec-status")).to_have_text("cancelled")
            await expect(blocked).to_be_hidden()
            assert real_problems(problems) == []
