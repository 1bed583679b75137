"""Migrate from the console's execution page, in a real browser (issue 23, point 3): Migrate… (disabled while running)
opens a small form; a plan (dry run) lists every problem and keeps Apply off; a mapping fixes it, the plan shows
the renamed element and Apply moves the execution to the new version: the page shows v2 and `migrated` in its log.
It keeps docs/console-migrate.png (with PROCENGINE_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, real_problems
from tests.support.paths import REPO
from tests.support.polling import poll
from tests.support.servers import call

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, expect

from tests.support.console import SHIPPING, kept, open_execution, path, start
from tests.support.console import shipping_console as console

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
pytestmark = pytest.mark.timeout(120)

RENAMED = {
    "key": "shipping",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "approval", "type": "wait-signal", "signal": "approval", "into": "approval", "next": "bill"},
                {"key": "bill", "type": "set-variable", "set": {"total": "amount * 3.0"}, "next": "ship"},
                {"key": "ship", "type": "wait-signal", "signal": "shipped", "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""Version 2 of the console's `shipping`: `approve` renamed `approval`, the total computed anew."""


async def test_plan_then_apply_a_migration(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "shipping", {"amount": 10.0})
        await poll(lambda: kept(session, server, execution), lambda items: len(items) >= 1)
        await open_execution(page, execution, "running")
        await expect(page.locator("#do-migrate")).to_be_disabled()

        await call(session, server, "POST", path(execution, "/pause"))
        await call(session, server, "POST", "/processes", json=RENAMED)
        await open_execution(page, execution, "paused")
        await page.click("#do-migrate")
        await expect(page.locator("#migrate-title")).to_have_text(f"Migrate #{execution} from shipping v1")
        await expect(page.locator("#migrate-version")).to_have_value("2")

        # a plan without the mapping: its problem listed, Apply stays off
        await page.click("#migrate-plan")
        await expect(page.locator("#migrate-problems")).to_contain_text("has no element 'approve'")
        await expect(page.locator("#migrate-apply")).to_be_disabled()
        await page.fill("#migrate-mapping", "approve")
        await page.click("#migrate-plan")
        await expect(page.locator("#migrate-problem")).to_contain_text("'approve' is not old=new")

        # mapped: the plan shows the rename, Apply moves it
        await page.fill("#migrate-mapping", "approve=approval")
        await page.fill("#migrate-reason", "the new approval step")
        await page.click("#migrate-plan")
        await expect(page.locator("#migrate-ok")).to_contain_text("no problems")
        await expect(page.locator("#migrate-steps tbody tr.renamed")).to_contain_text("approval")
        await page.locator("#migrate").scroll_into_view_if_needed()
        await page.screenshot(path=str(DOCS / "console-migrate.png"), animations="disabled")
        await page.click("#migrate-apply")

        await expect(page.locator("#exec-process")).to_contain_text("shipping v2")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#log tbody tr.ev-migrated")).to_have_count(1)
        await expect(page.locator("#migrate")).to_be_hidden()
        await call(session, server, "POST", path(execution, "/resume"))
        await call(session, server, "POST", path(execution, "/signals/approval"), json={"by": "dana"})
        await expect(page.locator("#variables")).to_contain_text("30")  # version 2's total
        assert SHIPPING["key"] == RENAMED["key"]
        assert real_problems(problems) == []
