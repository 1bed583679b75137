"""The console's Task queues page in a real browser (issue 24, point 1): each of the tenant's queues with its waiting
tasks, the oldest one's age, the tasks in flight and the locks expired, read again on Refresh."""

from __future__ import annotations

import os

import pytest

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, real_problems
from tests.support.servers import call

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, expect

from tests.support.console import console_with, start

pytestmark = pytest.mark.timeout(120)

PAYING = {
    "key": "paying",
    "threads": [{"key": "main", "elements": [
        {"key": "pay", "type": "task", "handler": "charge", "queue": "payments", "input": {"amount": "amount"}},
    ]}],
}  # fmt: skip


async def test_the_queues_page_shows_waiting_and_in_flight_tasks(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console_with(redis_server, prefix, browser, (PAYING,)) as (server, session, page, problems):
        await page.click("#nav-queues")
        await expect(page.locator("#queues-empty")).to_be_visible()  # no queue yet

        for amount in (1, 2, 3):
            await start(session, server, "paying", {"amount": amount})
        fetched = await call(
            session, server, "POST", "/tasks/fetch", json={"queues": ["payments"], "workerId": "w", "waitMs": 5000}
        )
        assert len(fetched["tasks"]) == 1

        await page.click("#queues-refresh")
        row = page.locator('#queues tr[data-queue="payments"]')
        await expect(row.locator('[data-count="depth"]')).to_have_text("2")
        await expect(row.locator('[data-count="inFlight"]')).to_have_text("1")
        await expect(row.locator('[data-count="locksExpired"]')).to_have_text("0")
        await expect(row.locator('[data-count="oldest"]')).not_to_have_text("—")
        assert real_problems(problems) == []
