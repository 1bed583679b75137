"""Going back from the console, in a real browser (issue 22, point 6): the checkpoint timeline of the execution page,
one checkpoint's stack and memory, the diff of two, and a rewind from a checkpoint with its confirmation (what
changes from now to there) and the server's refusals shown in it (409 while running, 404 for a checkpoint no
longer kept, 422 with its details). It keeps the screenshots of docs/repair.md's "Go back":
docs/console-timeline-diff.png and docs/console-timeline-rewind.png.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import Any

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

from playwright.async_api import Browser, expect

from tests.support.console import kept, open_execution, path, start
from tests.support.console import shipping_console as console

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
"""Where the screenshots go: docs/ with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary directory."""
pytestmark = pytest.mark.timeout(120)


async def approved(session: aiohttp.ClientSession, server: Server, amount: float) -> tuple[int, list[dict[str, Any]]]:
    """An execution given its approval and waiting at `ship`; its kept checkpoints, newest first."""
    execution = await start(session, server, "shipping", {"amount": amount})
    await poll(lambda: kept(session, server, execution), lambda items: any(c["elementKey"] == "approve" for c in items))
    await call(session, server, "POST", path(execution, "/signals/approval"), json={"by": "dana"})
    items = await poll(lambda: kept(session, server, execution), lambda items: items[0]["elementKey"] == "ship")
    return execution, items


async def test_the_timeline_shows_each_checkpoint_and_the_diff_of_two(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution, items = await approved(session, server, 10.0)
        await open_execution(page, execution, "running")
        newest, first = items[0]["seq"], items[-1]["seq"]
        assert first == 1

        # every kept checkpoint, newest first, the newest one the state now
        rows = page.locator("#timeline-list li.cp")
        await expect(rows.first).to_have_attribute("data-seq", str(newest))
        await expect(rows.last).to_have_attribute("data-seq", "1")
        await expect(rows.first).to_have_class(re.compile(r"\bnow\b"))
        await expect(rows.first.locator(".cp-now")).to_have_text("now")
        await expect(page.locator("#timeline-caption")).to_contain_text("kept, newest first")
        bill = page.locator("#timeline-list li.cp", has_text="after bill")
        await expect(bill).to_have_count(1)

        # a click on the first: its stack (the wait for approval) and memory (only the amount)
        await rows.last.locator(".cp-open").click()
        checkpoint = page.locator("#checkpoint")
        await expect(checkpoint).to_have_attribute("data-seq", "1")
        await expect(checkpoint.locator("h3")).to_contain_text("Checkpoint #1")
        await expect(checkpoint.locator(".cp-columns")).to_contain_text("amount")
        await expect(checkpoint.locator(".cp-columns")).not_to_contain_text("total")
        await expect(checkpoint.locator(".cp-stack tbody tr")).to_have_count(1)
        await expect(checkpoint.locator(".cp-stack tbody")).to_contain_text("approve")
        await expect(rows.last).to_have_class(re.compile(r"\bopen\b"))
        # running: no rewind (its title says why); fork applies (test_console_travel.py)
        await expect(page.locator("#checkpoint-rewind")).to_be_disabled()
        await expect(page.locator("#checkpoint-rewind")).to_have_attribute(
            "title", "applies to a paused, failed or cancelled execution; this one is running"
        )
        await expect(page.locator("#checkpoint-fork")).to_be_enabled()

        # two ticked: from the older to the newer, added green, removed red, changed from → to
        await rows.last.locator(".cp-pick").check()
        await expect(page.locator("#checkpoint-diff")).to_be_hidden()
        await rows.first.locator(".cp-pick").check()
        diff = page.locator("#checkpoint-diff")
        await expect(diff).to_be_visible()
        await expect(diff.locator("h3")).to_contain_text(f"From #1 to #{newest}")
        variables = diff.locator('.diff-part[data-part="variables"]')
        await expect(variables.locator('tr.diff-added[data-name="total"]')).to_contain_text("20")
        await expect(variables.locator('tr.diff-added[data-name="approval"]')).to_contain_text('"by":"dana"')
        outputs = diff.locator('.diff-part[data-part="outputs"]')
        await expect(outputs.locator('tr.diff-added[data-name="approve"]')).to_be_visible()
        stack = diff.locator('.diff-part[data-part="stack"]')
        await expect(stack.locator('tr.diff-removed[data-name="approve"]')).to_be_visible()
        await expect(stack.locator('tr.diff-added[data-name="ship"]')).to_be_visible()
        colour = await variables.locator("tr.diff-added").first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(233, 248, 239)"  # green
        await page.locator("#timeline").scroll_into_view_if_needed()
        await page.screenshot(path=str(DOCS / "console-timeline-diff.png"), animations="disabled")

        # the other way: what was added is removed (red)
        await page.click("#diff-flip")
        await expect(diff.locator("h3")).to_contain_text(f"From #{newest} to #1")
        await expect(variables.locator('tr.diff-removed[data-name="total"]')).to_contain_text("20")
        colour = await variables.locator("tr.diff-removed").first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(253, 238, 238)"  # red

        # a changed value reads from → to: two checkpoints either side of a variables edit
        await call(session, server, "POST", path(execution, "/pause"))
        await call(session, server, "PATCH", path(execution, "/variables"), json={"amount": 11.5})
        await expect(page.locator("#exec-status")).to_have_text("paused")
        edited = (await kept(session, server, execution))[0]["seq"]
        await expect(rows.first).to_have_attribute("data-seq", str(edited))  # read again with the rest of the page
        await rows.nth(1).locator(".cp-pick").check()  # the pause's
        await rows.first.locator(".cp-pick").check()  # the edit's: replaces the first ticked
        await expect(diff.locator("h3")).to_contain_text(f"to #{edited}")
        changed = variables.locator('tr.diff-changed[data-name="amount"]')
        await expect(changed.locator("del")).to_have_text("10")
        await expect(changed.locator("ins")).to_have_text("11.5")
        await expect(diff.locator('.diff-part[data-part="stack"]')).to_have_count(0)

        # more than a page (20): the first page, then the older ones on a click
        async with asyncio.timeout(20):
            while len(await kept(session, server, execution)) < 24:
                await call(session, server, "POST", path(execution, "/resume"))
                await call(session, server, "POST", path(execution, "/pause"))
        total = len(await kept(session, server, execution))
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(rows).to_have_count(20)
        await expect(page.locator("#timeline-caption")).to_have_text("20+ kept, newest first")
        await page.click("#timeline-older")
        await expect(rows).to_have_count(total)
        await expect(rows.last).to_have_attribute("data-seq", "1")
        await expect(page.locator("#timeline-older")).to_be_hidden()
        assert real_problems(problems) == []


async def test_rewind_from_a_checkpoint_after_a_confirmation(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution, _ = await approved(session, server, 10.0)
        await open_execution(page, execution, "running")
        rows = page.locator("#timeline-list li.cp")
        await rows.last.locator(".cp-open").click()
        rewind = page.locator("#checkpoint-rewind")
        await expect(rewind).to_be_disabled()  # running

        await page.click("#do-pause")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(rewind).to_be_enabled()
        now = (await kept(session, server, execution))[0]["seq"]
        await rewind.click()

        # the confirmation: what changes from now (the pause's checkpoint) to #1, nothing sent yet
        await expect(page.locator("#rewind-title")).to_have_text(f"Rewind #{execution} to checkpoint #1?")
        changes = page.locator("#rewind-diff")
        await expect(changes).to_contain_text(f"From now (checkpoint #{now}) to #1:")
        total = changes.locator('.diff-part[data-part="variables"] tr.diff-removed[data-name="total"]')
        await expect(total).to_be_visible()
        await expect(
            changes.locator('.diff-part[data-part="stack"] tr.diff-added[data-name="approve"]')
        ).to_be_visible()
        await expect(page.locator("#rewind-summary")).to_contain_text("removed")
        await page.fill("#rewind-reason", "approved by mistake")
        await page.fill("#rewind-variables", '{"amount": 12.5}')
        await page.locator("#rewind").scroll_into_view_if_needed()
        await page.screenshot(path=str(DOCS / "console-timeline-rewind.png"), animations="disabled")

        # the patch is checked as JSON here; a JSON that is not an object: the server's 422 with its details
        await page.fill("#rewind-variables", "{oops")
        await page.click("#rewind-confirm")
        problem = page.locator("#rewind-problem")
        await expect(problem).to_contain_text("the variables patch is not JSON")
        await page.fill("#rewind-variables", "[1]")
        await page.click("#rewind-confirm")
        await expect(problem).to_have_attribute("data-status", "422")
        await expect(problem.locator("strong")).to_contain_text("422 VALIDATION_ERROR")
        await expect(problem.locator("li")).to_contain_text(["variables: Input should be a valid dictionary"])
        await expect(page.locator("#exec-status")).to_have_text("paused")

        # resumed meanwhile (another operator): the server's 409 is shown in the confirmation, and nothing changed
        await call(session, server, "POST", path(execution, "/resume"))
        await expect(page.locator("#exec-status")).to_have_text("running")
        await expect(rewind).to_be_disabled()
        await page.fill("#rewind-variables", '{"amount": 12.5}')
        await page.click("#rewind-confirm")
        await expect(problem).to_have_attribute("data-status", "409")
        await expect(problem.locator("strong")).to_contain_text("409 INVALID_TRANSITION")
        await expect(problem).to_contain_text("current status: running")
        await expect(page.locator("#action-result")).to_contain_text("rewind refused")
        await expect(page.locator("#exec-status")).to_have_text("running")

        # paused again: the rewind goes through with its patch and reason; the page is read again, paused at #1
        await call(session, server, "POST", path(execution, "/pause"))
        await expect(page.locator("#exec-status")).to_have_text("paused")
        now = (await kept(session, server, execution))[0]["seq"]
        await expect(changes).to_contain_text(f"From now (checkpoint #{now}) to #1:")  # follows the state now
        await expect(problem).to_be_visible()
        await page.click("#rewind-confirm")
        await expect(page.locator("#action-result")).to_have_text(
            "rewind: the execution is paused at checkpoint #1 (it was paused)"
        )
        await expect(page.locator("#exec-status")).to_have_text("paused")
        entry = page.locator("#log tbody tr.ev-rewound")
        await expect(entry).to_have_count(1)
        await expect(entry).to_contain_text("approved by mistake")
        await expect(entry).to_contain_text('"checkpoint":1')
        await expect(page.locator("#variables")).to_contain_text("12.5")
        await expect(page.locator("#variables")).not_to_contain_text("total")
        await expect(page.locator("#stack tbody")).to_contain_text("approve")
        await expect(page.locator("#rewind")).to_have_count(0)  # the page was opened again: nothing left open
        await expect(rows.first.locator(".cp-now")).to_have_text("now")  # the rewind's own checkpoint

        # it goes on from there: the approval again, the total from the patched amount
        await page.click("#do-resume")
        await expect(page.locator("#exec-status")).to_have_text("running")
        await call(session, server, "POST", path(execution, "/signals/approval"), json={"by": "eve"})
        await expect(page.locator("#variables")).to_contain_text("25")
        assert real_problems(problems) == []


async def test_rewind_a_cancelled_execution_and_a_checkpoint_no_longer_kept(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser, "--history-checkpoints", "4") as (server, session, page, _):
        # cancelled: its stack and memory are cleared; the confirmation says so and shows all #1 brings back
        cancelled = await start(session, server, "shipping", {"amount": 3.0})
        await poll(lambda: kept(session, server, cancelled), lambda items: len(items) >= 1)
        await call(session, server, "POST", path(cancelled, "/cancel"))
        await open_execution(page, cancelled, "cancelled")
        await page.locator('#timeline-list li.cp[data-seq="1"] .cp-open').click()
        await expect(page.locator("#checkpoint-rewind")).to_be_enabled()
        await page.click("#checkpoint-rewind")
        changes = page.locator("#rewind-diff")
        await expect(changes).to_contain_text("From now (no stack and memory: the cancel cleared them) to #1:")
        await expect(changes.locator('tr.diff-added[data-name="amount"]')).to_contain_text("3")
        await page.click("#rewind-confirm")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#log tbody tr.ev-rewound")).to_contain_text("cancelled → paused")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")  # followed again

        # a checkpoint dropped (the history keeps 4) while its confirmation is open: the server's 404 in it
        await page.locator('#timeline-list li.cp[data-seq="1"] .cp-open').click()
        await page.click("#checkpoint-rewind")
        await expect(page.locator("#rewind-diff")).to_contain_text("to #1:")
        async with asyncio.timeout(10):
            while any(c["seq"] == 1 for c in await kept(session, server, cancelled)):
                await call(session, server, "POST", path(cancelled, "/resume"))
                await call(session, server, "POST", path(cancelled, "/pause"))
        await expect(page.locator("#timeline-list li.cp[data-seq='1']")).to_have_count(0)
        await page.click("#rewind-confirm")
        problem = page.locator("#rewind-problem")
        await expect(problem).to_have_attribute("data-status", "404")
        await expect(problem).to_contain_text(f"checkpoint 1 of execution {cancelled} is not kept")
        await expect(page.locator("#exec-status")).to_have_text("paused")
