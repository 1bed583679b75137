"""Fork, breakpoints and Step from the console, in a real browser (issue 22): Fork from here of a checkpoint shown
(with a confirmation: reason, variables patch, start it paused; the new execution linked; the server's refusals
in it), breakpoints toggled on the graph's elements (the whole set PUT, `alreadyStarted` shown, the execution
pausing before the element), and Step beside Resume running one element. It keeps the screenshots of docs/repair.md's
"Go back": docs/console-fork.png and docs/console-breakpoints.png.
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

from playwright.async_api import Browser, expect

from tests.support.console import kept, open_execution, path, start
from tests.support.console import shipping_console as console

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
"""Where the screenshots go: docs/ with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary directory."""
pytestmark = pytest.mark.timeout(120)


async def approved(session: aiohttp.ClientSession, server: Server, amount: float) -> int:
    """An execution given its approval and waiting at `ship`."""
    execution = await start(session, server, "shipping", {"amount": amount})
    await poll(lambda: kept(session, server, execution), lambda items: any(c["elementKey"] == "approve" for c in items))
    await call(session, server, "POST", path(execution, "/signals/approval"), json={"by": "dana"})
    await poll(lambda: kept(session, server, execution), lambda items: items[0]["elementKey"] == "ship")
    return execution


async def test_fork_from_a_checkpoint_of_a_running_and_of_a_paused_execution(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await approved(session, server, 10.0)
        await open_execution(page, execution, "running")
        await page.locator('#timeline-list li.cp[data-seq="1"] .cp-open').click()
        fork = page.locator("#checkpoint-fork")
        await expect(fork).to_be_enabled()  # running: a fork does not touch it
        await fork.click()
        await expect(page.locator("#fork-title")).to_have_text(f"Fork #{execution} from checkpoint #1?")

        # the patch is checked as JSON here; a JSON that is not an object: the server's 422 in the confirmation
        problem = page.locator("#fork-problem")
        await page.fill("#fork-variables", "{oops")
        await page.click("#fork-confirm")
        await expect(problem).to_contain_text("the variables patch is not JSON")
        await page.fill("#fork-variables", "[1]")
        await page.click("#fork-confirm")
        await expect(problem).to_have_attribute("data-status", "422")
        await expect(page.locator("#fork-result")).to_be_hidden()

        # running, from #1 (waiting for the approval), its amount patched: linked, and this one is not changed
        await page.fill("#fork-variables", '{"amount": 3}')
        await page.fill("#fork-reason", "try it cheaper")
        await page.click("#fork-confirm")
        await expect(problem).to_be_hidden()
        link = page.locator("#fork-link")
        await expect(link).to_be_visible()
        await page.locator("#fork").scroll_into_view_if_needed()
        await page.screenshot(path=str(DOCS / "console-fork.png"), animations="disabled")
        forked = int((await link.text_content() or "").rsplit("#", 1)[1])
        assert forked != execution
        await expect(page.locator("#fork-result")).to_contain_text("(running)")
        await expect(page.locator("#log tbody tr.ev-forked")).to_have_count(1)
        await expect(page.locator("#exec-status")).to_have_text("running")
        await link.click()
        await expect(page.locator("#exec-title")).to_have_text(f"Execution #{forked}")
        await expect(page.locator("#exec-status")).to_have_text("running")
        await expect(page.locator("#variables")).to_contain_text("3")
        await expect(page.locator("#stack tbody")).to_contain_text("approve")
        started = page.locator("#log tbody tr.ev-started")
        await expect(started).to_contain_text(f'"executionID":{execution}')

        # from a paused execution, started paused: the new one is paused at the checkpoint
        await call(session, server, "POST", path(execution, "/pause"))
        await open_execution(page, execution, "paused")
        newest = (await kept(session, server, execution))[0]["seq"]
        await page.locator(f'#timeline-list li.cp[data-seq="{newest}"] .cp-open').click()
        await page.click("#checkpoint-fork")
        await page.check("#fork-paused")
        await page.click("#fork-confirm")
        await expect(page.locator("#fork-result")).to_contain_text("(paused)")
        await page.click("#fork-link")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#variables")).to_contain_text("20")  # the total, computed before the fork
        await expect(page.locator("#stack tbody")).to_contain_text("ship")
        assert real_problems(problems) == []


async def test_a_fork_from_a_checkpoint_no_longer_kept_is_refused_in_the_confirmation(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser, "--history-checkpoints", "4") as (server, session, page, _):
        execution = await start(session, server, "shipping", {"amount": 3.0})
        await poll(lambda: kept(session, server, execution), lambda items: len(items) >= 1)
        await call(session, server, "POST", path(execution, "/pause"))
        await open_execution(page, execution, "paused")
        await page.locator('#timeline-list li.cp[data-seq="1"] .cp-open').click()
        await page.click("#checkpoint-fork")
        while any(c["seq"] == 1 for c in await kept(session, server, execution)):
            await call(session, server, "POST", path(execution, "/resume"))
            await call(session, server, "POST", path(execution, "/pause"))
        await page.click("#fork-confirm")
        problem = page.locator("#fork-problem")
        await expect(problem).to_have_attribute("data-status", "404")
        await expect(problem).to_contain_text("not kept")
        await expect(page.locator("#fork-link")).to_have_count(0)


async def test_breakpoints_toggled_on_the_graph_and_a_step(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "shipping", {"amount": 10.0})
        await poll(
            lambda: kept(session, server, execution), lambda items: any(c["elementKey"] == "approve" for c in items)
        )
        await open_execution(page, execution, "running")
        await expect(page.locator("#bp-set")).to_have_text("none")
        await expect(page.locator("#do-step")).to_be_disabled()  # running

        # on the element waiting now: set, but it has begun and will not stop
        approve = page.locator('#graph .node[data-key="approve"]')
        await approve.locator(".bp").click()
        await expect(page.locator("#bp-started")).to_have_text("already begun, will not stop: approve (main)")
        await expect(page.locator("#bp-set")).to_have_text("approve")
        await expect(approve).to_have_class(re.compile(r"\bbp-on\b"))
        await expect(page.locator("#details")).to_be_hidden()  # the marker, not the element's details

        # and on bill: the whole set PUT; the approval comes, it pauses before bill
        bill = page.locator('#graph .node[data-key="bill"]')
        await bill.locator(".bp").click()
        await expect(page.locator("#bp-set")).to_have_text("approve, bill")
        await expect(page.locator("#bp-started")).to_have_text(  # the whole set's answer: bill had not begun
            "already begun, will not stop: approve (main)"
        )
        await expect(bill.locator(".bp")).to_have_attribute("aria-pressed", "true")
        await call(session, server, "POST", path(execution, "/signals/approval"), json={"by": "dana"})
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#exec-blocked")).to_contain_text("breakpoint before 'bill'")
        await expect(page.locator("#log tbody tr.ev-breakpoint")).to_have_count(1)
        await expect(page.locator("#variables")).not_to_contain_text("total")
        await page.locator("#graph").scroll_into_view_if_needed()
        await page.screenshot(path=str(DOCS / "console-breakpoints.png"), animations="disabled")

        # the page opened again knows the set from the log
        await page.evaluate("location.hash = '#/'")
        await open_execution(page, execution, "paused")
        await expect(page.locator("#bp-set")).to_have_text("approve, bill")
        await expect(page.locator('#graph .node[data-key="bill"]')).to_have_class(re.compile(r"bp-on"))

        # Step: exactly bill, and paused again
        step = page.locator("#do-step")
        await expect(step).to_be_enabled()
        await step.click()
        await expect(page.locator("#action-result")).to_have_text(
            "step: ran bill (main) completed; the execution is paused"
        )
        await expect(page.locator("#variables")).to_contain_text("total")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#log tbody tr.ev-stepped")).to_have_count(1)

        # removed from the graph (a click again) and cleared; a breakpoint on a final execution cannot be set
        await page.locator('#graph .node[data-key="bill"] .bp').click()
        await expect(page.locator("#bp-set")).to_have_text("approve")
        await page.click("#bp-clear")
        await expect(page.locator("#bp-set")).to_have_text("none")
        await call(session, server, "POST", path(execution, "/cancel"))
        await expect(page.locator("#exec-status")).to_have_text("cancelled")
        await expect(page.locator("#bp-hint")).to_contain_text("running or paused")
        await expect(page.locator("#do-step")).to_be_disabled()

        # a set given at the start, never changed since: the page reads it from the execution's state
        body = {"processKey": "shipping", "variables": {"amount": 2.0}, "pauseBefore": ["bill"]}
        second = int((await call(session, server, "POST", "/executions/processes", json=body))["executionID"])
        await page.evaluate("location.hash = '#/'")
        await open_execution(page, second, "running")
        await expect(page.locator("#bp-set")).to_have_text("bill")
        assert real_problems(problems) == []
