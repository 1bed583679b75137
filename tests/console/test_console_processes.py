"""The Processes page in a real browser (issue 23, point 4): every definition with its versions and how many
executions of each are in each status (kept up to date from the status event stream), a version's graph, the Start
form (JSON checked here, the server's 422 problems under the field, an idempotency key), Deprecate / Undeprecate
(starts refused while deprecated) and Delete (only a version no stored execution uses; its key's latest goes back).
It keeps the screenshot of docs/api.md's "Process versions": docs/console-processes.png.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, real_problems
from tests.support.paths import REPO
from tests.support.servers import call

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, expect

from tests.support.console import console_with, start

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
"""Where the screenshot goes: docs/ with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary directory."""
pytestmark = pytest.mark.timeout(120)


def _orders(*elements: dict[str, object]) -> dict[str, object]:
    return {"key": "orders", "name": "Orders", "threads": [{"key": "main", "elements": list(elements)}]}


V1 = _orders(
    {"key": "approve", "type": "wait-signal", "signal": "approval", "next": "done"}, {"key": "done", "type": "end"}
)
V2 = _orders(
    {"key": "price", "type": "set-variable", "set": {"total": "amount * 2.0"}, "next": "approve"},
    {"key": "approve", "type": "wait-signal", "signal": "approval", "next": "done"},
    {"key": "done", "type": "end"},
)
V3 = _orders({"key": "only", "type": "wait-signal", "signal": "go"})
REFUND = {
    "key": "refund",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "pay", "type": "task", "handler": "echo", "next": "end"},
                {"key": "end", "type": "end"},
            ],
        }
    ],
}


async def test_the_processes_page(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with console_with(redis_server, prefix, browser, (V1, V2, REFUND)) as (server, session, page, problems):
        listed = await call(session, server, "GET", "/processes")
        ids = {(p["key"], p["version"]): p["processID"] for p in listed["items"]}
        v1, v2 = ids[("orders", 1)], ids[("orders", 2)]
        first = await call(session, server, "POST", "/executions/processes", json={"processID": v1})
        await call(session, server, "POST", "/executions/processes", json={"processID": v1})
        await call(session, server, "POST", f"/executions/processes/{first['executionID']}/pause", json={})

        # given the page: each key's versions, newest first, with their counts by status
        await page.click("#nav-processes")
        await expect(page.locator("#view-processes")).to_be_visible()
        row_v1 = page.locator(f'tr[data-process-id="{v1}"]')
        await expect(row_v1.locator('td[data-status="running"]')).to_have_text("1")
        await expect(row_v1.locator('td[data-status="paused"]')).to_have_text("1")
        await expect(page.locator('.proc-key[data-key="orders"] tbody tr')).to_have_count(2)
        await expect(page.locator('.proc-key[data-key="orders"] tbody tr').first).to_have_attribute(
            "data-process-id", str(v2)
        )
        await expect(page.locator(f'tr[data-process-id="{v2}"] .tag-latest')).to_be_visible()
        link = row_v1.locator('td[data-status="paused"] a')
        await expect(link).to_have_attribute("href", f"#/?status=paused&process={v1}")

        # a version's graph
        await page.locator(f'tr[data-process-id="{v2}"] td').nth(1).click()
        await expect(page).to_have_url(f"{server.url}/#/processes/{v2}")
        await expect(page.locator("#proc-title")).to_have_text("orders v2")
        await expect(page.locator('#proc-graph svg .node[data-key="price"]')).to_be_visible()
        await expect(page.locator("#proc-delete")).to_be_enabled()  # no execution of v2 yet

        # the Start form: not JSON (said here), not an object (the server's 422 under the field), then started
        problem = page.locator("#start-problem")
        await page.fill("#start-variables", "{oops")
        await page.click("#start-submit")
        await expect(problem).to_contain_text("the variables are not JSON")
        await page.fill("#start-variables", "[1, 2]")
        await page.click("#start-submit")
        await expect(problem).to_have_attribute("data-status", "422")
        await expect(problem.locator(".problem-details li").first).to_contain_text("variables")
        await page.fill("#start-variables", '{"amount": 21.5}')
        await page.fill("#start-attributes", '{"ghost": 1}')  # a search attribute the version does not declare
        await page.click("#start-submit")
        await expect(problem.locator(".problem-details li").first).to_contain_text("attributes.ghost")
        await page.fill("#start-attributes", "")
        await page.fill("#start-key", "order-77")
        await page.click("#start-submit")
        await expect(problem).to_be_hidden()
        await expect(page.locator("#start-result")).to_contain_text("started execution #")
        await page.click("#start-submit")  # the same key again: the first execution, nothing new
        await expect(page.locator("#start-result")).to_contain_text("its idempotency key names execution #")
        # the counts follow the status events
        await expect(page.locator(f'tr[data-process-id="{v2}"] td[data-status="running"]')).to_have_text("1")
        await expect(page.locator("#proc-delete")).to_be_disabled()

        # deprecate: starts refused (by key too: v2 is the latest), the page says so; then back
        await page.click("#proc-deprecate")
        await expect(page.locator("#proc-state")).to_have_text("deprecated")
        await expect(page.locator(f'tr[data-process-id="{v2}"] .tag-deprecated')).to_be_visible()
        await expect(page.locator("#start-submit")).to_be_disabled()
        async with session.post(
            server.url + "/api/v1/process-engine/executions/processes", json={"processKey": "orders"}
        ) as refused:
            assert refused.status == 409 and (await refused.json())["error"]["code"] == "PROCESS_DEPRECATED"
        await page.locator(f'tr[data-process-id="{v2}"] td').nth(1).scroll_into_view_if_needed()
        await page.screenshot(path=str(DOCS / "console-processes.png"), animations="disabled")
        await page.click("#proc-deprecate")
        await expect(page.locator("#proc-state")).to_have_text("takes starts")
        await expect(page.locator("#start-submit")).to_be_enabled()

        # delete: a version nobody uses; the key's latest goes back to v2
        v3 = (await call(session, server, "POST", "/processes", json=V3))["processID"]
        await page.evaluate(f"location.hash = '#/processes/{v3}'")
        await expect(page.locator("#proc-title")).to_have_text("orders v3")
        await page.click("#proc-delete")
        await expect(page.locator("#proc-confirm")).to_be_visible()
        await page.click("#proc-confirm-yes")
        await expect(page.locator("#proc-note")).to_contain_text("deleted v3; the latest of orders is now v2")
        await expect(page.locator(f'tr[data-process-id="{v3}"]')).to_have_count(0)
        await expect(page.locator("#proc-title")).to_have_text("orders v2")
        started = await start(session, server, "orders", {"amount": 1.0})
        status = await call(session, server, "GET", f"/executions/processes/{started}/status")
        assert status["processID"] == v2

        assert real_problems(problems) == []
