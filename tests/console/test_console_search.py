"""The console's list with search attributes (issue 23): each row shows the execution's attributes, and the search
field filters the list by the list's own query parameters; a bad filter shows the server's problems."""

from __future__ import annotations

import os
from typing import Any

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

pytestmark = pytest.mark.timeout(120)
ORDERS: dict[str, Any] = {
    "key": "orders",
    "attributes": {"customer": "keyword", "amount": "number"},
    "threads": [{"key": "main", "elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}],
}


async def test_the_list_shows_attributes_and_searches_by_them(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with serving(redis_server.url, prefix) as start, aiohttp.ClientSession() as session:
        server = await start()
        await call(session, server, "POST", "/processes", json=ORDERS)
        ids = []
        for customer, amount in (("acme", 5), ("globex", 500), ("acme", 50)):
            body = {"processKey": "orders", "attributes": {"customer": customer, "amount": amount}}
            ids.append(int((await call(session, server, "POST", "/executions/processes", json=body))["executionID"]))
        async with open_page(browser) as (page, problems):
            await page.goto(server.url + "/")
            await expect(page.locator("#executions tbody tr")).to_have_count(3)
            row = page.locator(f'#executions tr[data-id="{ids[1]}"] td.attributes')
            await expect(row).to_have_text("amount=500, customer=globex")

            await page.fill("#filter-search", "attr.customer=acme attr.amount.gte=10")
            await page.press("#filter-search", "Enter")
            await expect(page.locator("#executions tbody tr")).to_have_count(1)
            await expect(page.locator(f'#executions tr[data-id="{ids[2]}"]')).to_be_visible()
            assert "search=" in await page.evaluate("location.hash")

            # all that match the search, paused in bulk: the job's filter is the search's, one execution
            await page.click("#bulk-all")
            await expect(page.locator("#bulk-count")).to_contain_text("attr.customer=acme, attr.amount.gte=10")
            await page.click("#bulk-do-pause")
            await expect(page.locator("#bulk-confirm-text")).to_contain_text("Pause 1 execution")
            await page.click("#bulk-confirm-yes")
            await expect(page.locator("#bulk-status")).to_have_text("completed")
            paused = await call(session, server, "GET", f"/executions/processes/{ids[2]}/status")
            others = [await call(session, server, "GET", f"/executions/processes/{i}/status") for i in ids[:2]]
            assert (paused["status"], [o["status"] for o in others]) == ("paused", ["running", "running"])

            await page.evaluate("location.hash = '#/'")
            await page.fill("#filter-search", "attr.ghost=1")
            await page.press("#filter-search", "Enter")
            await expect(page.locator("#error")).to_contain_text("attr.ghost")
            assert [p for p in real_problems(problems) if "422" not in p] == []
