"""Schedules in the console, in a real browser (issue 24, point 3): the Schedules page lists none, its form shows the
server's 422 problems (a bad cron, an unknown time zone, cron and every both given) under itself and creates nothing;
a valid schedule opens its page with its next five fire times; Trigger now fires it and its outcome (started, the
execution's link) shows; Pause and Resume change its state; Delete takes it away. It keeps the screenshot of
docs/schedules.md: docs/console-schedules.png.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, real_problems
from tests.support.paths import REPO

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, expect

from tests.support.console import shipping_console

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
pytestmark = pytest.mark.timeout(120)
SCHEDULE_PAGE = re.compile(r"#/schedules/([0-9]+)$")


async def test_a_schedule_made_triggered_paused_and_deleted(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with shipping_console(redis_server, prefix, browser) as (_server, _session, page, problems):
        await page.click("#nav-schedules")
        await expect(page.locator("#schedules-empty")).to_be_visible()

        # a bad schedule: every problem under the form, nothing created
        await page.fill("#sched-process", "shipping")
        await page.fill("#sched-cron", "0 25 * * *")
        await page.fill("#sched-every", "5m")
        await page.fill("#sched-timezone", "Atlantis/Capital")
        await page.click("#sched-create")
        await expect(page.locator("#sched-problem")).to_have_attribute("data-status", "422")
        await expect(page.locator("#sched-problem li")).to_have_count(3)
        await expect(page.locator("#schedules tbody tr")).to_have_count(0)

        # when it is right: its page, with the next five fire times
        await page.fill("#sched-every", "")
        await page.fill("#sched-cron", "30 2 * * *")
        await page.fill("#sched-timezone", "Europe/Berlin")
        await page.select_option("#sched-overlap", "allow")
        await page.fill("#sched-variables", '{"amount": 2.5}')
        await page.click("#sched-create")
        await expect(page).to_have_url(SCHEDULE_PAGE)
        await expect(page.locator("#sched-next li")).to_have_count(5)
        await expect(page.locator("#sched-state")).to_have_text("active")

        # Trigger now: the firing's outcome, with the execution it started
        await page.fill("#sched-reason", "a smoke test")
        await page.click("#sched-trigger")
        started = page.locator('#sched-outcomes tr[data-result="started"]')
        await expect(started).to_have_count(1)
        await expect(started.locator("a")).to_have_attribute("href", re.compile(r"^#/executions/[0-9]+$"))
        await expect(started).to_contain_text("(by hand)")
        await page.screenshot(path=str(DOCS / "console-schedules.png"), animations="disabled")

        await page.click("#sched-pause")
        await expect(page.locator("#sched-state")).to_have_text("paused")
        await expect(page.locator("#sched-next li")).to_have_text("paused")
        await page.click("#sched-resume")
        await expect(page.locator("#sched-state")).to_have_text("active")

        # the list shows it; Delete takes it away
        await page.click("#nav-schedules")
        await expect(page.locator("#schedules tbody tr")).to_have_count(1)
        await expect(page.locator("#schedules tbody tr td").nth(2)).to_have_text("cron 30 2 * * * (Europe/Berlin)")
        await page.click("#schedules tbody tr a")
        await page.click("#sched-delete")
        await expect(page).to_have_url(re.compile(r"#/schedules$"))
        await expect(page.locator("#schedules-empty")).to_be_visible()
        assert real_problems(problems) == []  # the 422 above is on purpose
