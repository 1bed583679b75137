"""Bulk operations in the console, in a real browser (issue 23, point 4): the list's selection (rows ticked by hand,
or "Select all that match" the list's filter) and its action bar, whose every action is a dry run first (the count
and the first executions shown in a confirm step) and a job only on Confirm; the Bulk operations page: the jobs, a
job's progress read while it runs, its refusals by reason, its items, and the buttons that steer it and undo an
ended bulk pause. It keeps the screenshots of docs/operations.md's "Bulk operations": docs/console-bulk.png (a job)
and docs/console-bulk-select.png (the list with a selection and the confirm step).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import aiohttp
import pytest

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, real_problems
from tests.support.paths import REPO
from tests.support.polling import poll
from tests.support.servers import Server, call

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, Page, Request, expect

from tests.support.console import path, shipping_console, start

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
"""Where the screenshots go: docs/ with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary directory."""
pytestmark = pytest.mark.timeout(120)
JOB_PAGE = re.compile(r"#/bulk/([0-9]+)$")


async def status_of(session: aiohttp.ClientSession, server: Server, execution: int) -> str:
    status: str = (await call(session, server, "GET", path(execution, "/status")))["status"]
    return status


async def job_id(page: Page) -> int:
    await expect(page).to_have_url(JOB_PAGE)
    found = JOB_PAGE.search(page.url)
    assert found
    return int(found.group(1))


async def test_two_rows_paused_after_a_dry_run(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with shipping_console(redis_server, prefix, browser) as (server, session, page, problems):
        first, second, third = [await start(session, server, "shipping", {"amount": 1.0}) for _ in range(3)]
        await page.click("#refresh")
        await expect(page.locator(f'#executions tr[data-id="{third}"]')).to_be_visible()
        await expect(page.locator("#bulk-do-pause")).to_have_count(0)  # no selection, no actions

        # given two rows ticked
        await page.check(f'#executions tr[data-id="{first}"] input[data-pick]')
        await page.check(f'#executions tr[data-id="{second}"] input[data-pick]')
        await expect(page.locator("#bulk-count")).to_have_text("2 selected")

        # a signal without its name: the dry run's 422 shows under the form, nothing is created
        await page.click("#bulk-do-signal")
        await page.click("#bulk-check")
        await expect(page.locator("#bulk-problem")).to_have_attribute("data-status", "422")
        await expect(page.locator("#bulk-confirm")).to_be_hidden()

        # when Pause: the dry run's count and sample, then Confirm
        await page.click("#bulk-do-pause")
        await expect(page.locator("#bulk-confirm-text")).to_have_text("Pause 2 executions selected? ")
        await expect(page.locator("#bulk-sample")).to_have_text(f"first: #{second}, #{first}")
        await page.fill("#bulk-reason", "maintenance window")
        await expect(page.locator("#bulk-confirm")).to_be_visible()  # a reason does not change what matches
        assert await status_of(session, server, first) == "running"  # the dry run touched nothing
        await page.screenshot(path=str(DOCS / "console-bulk-select.png"), animations="disabled")
        await page.click("#bulk-confirm-yes")

        # then the job's page: completed, the two paused, the third left alone
        job = await job_id(page)
        await expect(page.locator("#bulk-status")).to_have_text("completed")
        await expect(page.locator('#bulk-facts dd[data-fact="done"]')).to_have_text("2")
        await expect(page.locator("#bulk-progress .label")).to_have_text("2 of 2 · 100%")
        await expect(page.locator('#bulk-items tr[data-outcome="done"]')).to_have_count(2)
        await expect(page.locator("#bulk-refused-none")).to_be_visible()
        assert [await status_of(session, server, e) for e in (first, second, third)] == ["paused", "paused", "running"]
        log = await call(session, server, "GET", path(first, "/log"))
        paused = [entry for entry in log["items"] if entry["event"] == "paused"]
        assert paused[-1]["detail"]["bulk"] == job and paused[-1]["detail"]["reason"] == "maintenance window"

        # the jobs page lists it
        await page.click("#nav-bulk")
        row = page.locator(f'#bulk-jobs tr[data-job="{job}"]')
        await expect(row.locator('td[data-count="done"]')).to_have_text("2")
        await expect(row.locator(".badge")).to_have_text("completed")
        assert real_problems(problems) == []


async def test_all_that_match_then_an_undo(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with shipping_console(redis_server, prefix, browser) as (server, session, page, problems):
        first, second, third = [await start(session, server, "shipping", {"amount": 1.0}) for _ in range(3)]
        await call(session, server, "POST", path(third, "/pause"), json={})

        # given the list filtered to the running ones, and all that match selected
        await page.evaluate("location.hash = '#/?status=running'")
        await expect(page.locator("#executions tbody tr")).to_have_count(2)
        await page.click("#bulk-all")
        await expect(page.locator("#bulk-count")).to_have_text("All executions that match: status running")
        await expect(page.locator(f'#executions tr[data-id="{first}"] input[data-pick]')).to_be_disabled()
        await expect(page.locator("#bulk-page")).to_be_checked()

        # when Pause: the filter's count, then the job by the filter
        await page.click("#bulk-do-pause")
        await expect(page.locator("#bulk-confirm-text")).to_have_text("Pause 2 executions that match status running? ")
        await page.click("#bulk-confirm-yes")
        pause = await job_id(page)
        await expect(page.locator("#bulk-status")).to_have_text("completed")
        await expect(page.locator('#bulk-facts dd[data-fact="over"]')).to_have_text('filter {"status":"running"}')
        job = await call(session, server, "GET", f"/bulk-operations/{pause}")
        assert job["filter"] == {"status": "running"} and job["done"] == 2

        # then one resumed by hand; the undo resumes the other and refuses that one, with its reason
        await call(session, server, "POST", path(first, "/resume"), json={})
        await page.fill("#bulk-steer-reason", "window over")
        await page.click("#bulk-undo")
        await expect(page).not_to_have_url(re.compile(rf"#/bulk/{pause}$"))
        undo = await job_id(page)
        await expect(page.locator("#bulk-status")).to_have_text("completed")
        await expect(page.locator('#bulk-facts dd[data-fact="undo of"]')).to_have_text(f"#{pause}")
        refused = page.locator("#bulk-refused tbody tr")
        await expect(refused).to_have_count(1)
        await expect(refused.locator("td").first).to_contain_text("resumed since")
        await expect(refused.locator("td").nth(1)).to_have_text("1")
        await expect(page.locator(f'#bulk-items tr[data-id="{first}"]')).to_have_attribute("data-outcome", "refused")
        await expect(page.locator(f'#bulk-items tr[data-id="{second}"]')).to_have_attribute("data-outcome", "done")
        await page.screenshot(path=str(DOCS / "console-bulk.png"), animations="disabled", full_page=True)
        assert [await status_of(session, server, e) for e in (first, second, third)] == ["running", "running", "paused"]

        # the pause's page names its undo, and no second undo is offered
        await page.evaluate(f"location.hash = '#/bulk/{pause}'")
        await expect(page.locator('#bulk-facts dd[data-fact="undone by"]')).to_have_text(f"#{undo}")
        await expect(page.locator("#bulk-undo")).to_be_disabled()
        assert real_problems(problems) == []


async def test_a_running_job_is_followed_and_steered(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with shipping_console(redis_server, prefix, browser) as (server, session, page, problems):
        ids = [await start(session, server, "shipping", {"amount": 1.0}) for _ in range(4)]
        created = await call(
            session, server, "POST", "/bulk-operations", json={"action": "pause", "ids": ids, "maxPerSecond": 1}
        )
        job = created["jobID"]

        # given the job's page while it runs (one execution a second)
        await page.evaluate(f"location.hash = '#/bulk/{job}'")
        await expect(page.locator("#bulk-status")).to_have_text("running")
        await expect(page.locator("#bulk-undo")).to_be_disabled()  # not while it runs

        # when paused, it holds; resumed, it goes on, and the page follows it to its end
        await page.click("#bulk-pause")
        await expect(page.locator("#bulk-status")).to_have_text("paused")
        await expect(page.locator("#bulk-resume")).to_be_enabled()
        await page.click("#bulk-resume")
        await expect(page.locator("#bulk-status")).to_have_text(re.compile("running|completed"))
        await expect(page.locator("#bulk-status")).to_have_text("completed", timeout=20_000)
        await expect(page.locator("#bulk-progress .label")).to_have_text("4 of 4 · 100%")
        await expect(page.locator("#bulk-items tbody tr")).to_have_count(4)
        await expect(page.locator("#bulk-undo")).to_be_enabled()
        assert {await status_of(session, server, e) for e in ids} == {"paused"}

        # a job cancelled from its page stops there: what it did stays done
        slow = await call(
            session, server, "POST", "/bulk-operations", json={"action": "resume", "ids": ids, "maxPerSecond": 1}
        )
        await page.evaluate(f"location.hash = '#/bulk/{slow['jobID']}'")
        await expect(page.locator("#bulk-status")).to_have_text("running")
        await expect(page.locator("#bulk-undo")).to_be_hidden()  # only a pause is undone
        await page.click("#bulk-cancel")
        await expect(page.locator("#bulk-status")).to_have_text("cancelled")
        await expect(page.locator("#bulk-cancel")).to_be_disabled()
        ended = await call(session, server, "GET", f"/bulk-operations/{slow['jobID']}")
        assert ended["status"] == "cancelled"
        assert real_problems(problems) == []


async def variables_of(session: aiohttp.ClientSession, server: Server, execution: int) -> dict[str, object]:
    state = await call(session, server, "GET", path(execution, "/state"))
    variables: dict[str, object] = state["memory"]["variables"]
    return variables


async def confirm(page: Page, text: str) -> int:
    """Dry run, see `text`, confirm; the job's id once its page says it completed."""
    await page.click("#bulk-check")
    await expect(page.locator("#bulk-confirm-text")).to_have_text(text)
    await page.click("#bulk-confirm-yes")
    job = await job_id(page)
    await expect(page.locator("#bulk-status")).to_have_text("completed")
    return job


async def test_the_actions_that_take_values(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with shipping_console(redis_server, prefix, browser) as (server, session, page, problems):
        first, second = [await start(session, server, "shipping", {"amount": 1.0}) for _ in range(2)]
        await page.click("#refresh")
        await expect(page.locator("#executions tbody tr")).to_have_count(2)

        # a signal with its JSON payload, to all that match (no filter: every execution)
        await page.click("#bulk-all")
        await expect(page.locator("#bulk-count")).to_have_text("All executions that match: every execution")
        await page.click("#bulk-do-signal")
        await page.fill("#bulk-signal", "approval")
        await page.fill("#bulk-payload", "{oops")
        await page.click("#bulk-check")
        await expect(page.locator("#bulk-problem")).to_contain_text("the payload is not JSON")
        await page.fill("#bulk-payload", '{"by": "dana"}')
        await confirm(page, "Signal 2 executions that match every execution? ")
        for execution in (first, second):
            got = await poll(lambda e=execution: variables_of(session, server, e), lambda v: "approval" in v)
            assert got["approval"] == {"by": "dana"}

        # a merge patch to the paused ones, ticked with the header's box
        for execution in (first, second):
            await call(session, server, "POST", path(execution, "/pause"), json={})
        await page.click("#nav-bulk")
        await page.click(".brand")
        await expect(page.locator(f'#executions tr[data-id="{first}"] .badge')).to_have_text("paused")
        await page.check("#bulk-page")
        await expect(page.locator("#bulk-count")).to_have_text("2 selected")
        await page.click("#bulk-do-edit-variables")
        await page.fill("#bulk-vars", '{"amount": 5, "note": "bulk"}')
        await confirm(page, "Edit variables 2 executions selected? ")
        for execution in (first, second):
            variables = await variables_of(session, server, execution)
            assert variables["amount"] == 5 and variables["note"] == "bulk"

        # migrate: a mapping that is not old=new is said here; no version is the server's 422
        await page.click(".brand")
        await page.check("#bulk-page")
        await page.click("#bulk-do-migrate")
        await page.fill("#bulk-mapping", "approve")
        await page.click("#bulk-check")
        await expect(page.locator("#bulk-problem")).to_have_text("'approve' is not old=new")
        await page.fill("#bulk-mapping", "")
        await page.click("#bulk-check")
        await expect(page.locator("#bulk-problem")).to_have_attribute("data-status", "422")
        await expect(page.locator("#bulk-problem")).to_contain_text("version")
        assert real_problems(problems) == []


async def test_a_job_is_read_while_it_runs_and_no_more(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with shipping_console(redis_server, prefix, browser) as (server, session, page, problems):
        ids = [await start(session, server, "shipping", {"amount": 1.0}) for _ in range(4)]
        reads: list[int] = []  # the jobs the page read (GET …/bulk-operations/{jobID}), one entry a read
        job_url = re.compile(r"/bulk-operations/([0-9]+)$")

        def on_request(request: Request) -> None:
            found = job_url.search(request.url)
            if found and request.method == "GET":
                reads.append(int(found.group(1)))

        page.on("request", on_request)

        async def run(action: str, per_second: int) -> int:
            body = {"action": action, "ids": ids, "maxPerSecond": per_second}
            created: int = (await call(session, server, "POST", "/bulk-operations", json=body))["jobID"]
            return created

        async def ended(job: int) -> None:
            await poll(
                lambda: call(session, server, "GET", f"/bulk-operations/{job}"), lambda j: j["endedAt"], within=30
            )

        # given a job's page: read while the job runs (4 executions at 2 a second), and no more once it has ended
        pause = await run("pause", 2)
        await page.evaluate(f"location.hash = '#/bulk/{pause}'")
        await expect(page.locator("#bulk-status")).to_have_text("completed", timeout=20_000)
        assert reads.count(pause) >= 2
        seen = len(reads)
        await ended(await run("resume", 2))  # a second and more: two periods of the poll at least
        assert len(reads) == seen

        # when the page changes while a job runs, it is not read again
        again = await run("pause", 1)
        await page.evaluate(f"location.hash = '#/bulk/{again}'")
        await expect(page.locator("#bulk-status")).to_have_text("running")
        await page.evaluate("location.hash = '#/'")
        await expect(page.locator("#view-list")).to_be_visible()
        seen = reads.count(again)
        await ended(again)
        assert reads.count(again) == seen
        assert real_problems(problems) == []
