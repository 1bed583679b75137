"""Repair from the console, in a real browser (issue 20, point 6): the failure banner's Retry with the variables
editor's changes, the editor on a paused execution (the server's 422 shown next to it, then a good patch, then
resume), buttons greyed where their operation does not apply, and the step controls of an element picked in the
graph. It keeps the screenshots of README's "Fix a failed execution": docs/console-repair-*.png.

The step controls' routes (`POST …/{id}/elements/{elementKey}/{verb}`) come with another branch: their tests skip
while the server's OpenAPI document has none, and run by themselves once it has.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest
import yaml

from procengine.store.embedded import RedisServer
from tests.support.browser import CHROMIUM, real_problems
from tests.support.paths import REPO
from tests.support.servers import Server, call

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, Page, expect

from tests.support.console import console_with, open_execution, start

DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
"""Where the screenshots go: docs/ with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary directory."""
pytestmark = pytest.mark.timeout(120)

INVOICE = yaml.safe_load((REPO / "examples" / "invoice.yaml").read_text())
"""Fails at `price` when started without a `discount` (README, "Fix a failed execution")."""
APPROVAL = {
    "key": "approval",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "approve", "type": "wait-signal", "signal": "approval", "next": "bill"},
                {"key": "bill", "type": "set-variable", "set": {"total": "amount * 2.0"}, "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""Waits for a signal, then computes `total` from `amount`: 3 variables (amount, note, total)."""
NAP = {
    "key": "nap",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "nap", "type": "delay", "durationMs": 600_000, "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""A delay of ten minutes: run-now ends it."""


def console(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> AbstractAsyncContextManager[tuple[Server, aiohttp.ClientSession, Page, list[str]]]:
    """A server with the three definitions (at most 5 variables an execution), a session, and the console open."""
    return console_with(redis_server, prefix, browser, (INVOICE, APPROVAL, NAP), "--max-variables", "5")


async def has_step_controls(session: aiohttp.ClientSession, server: Server) -> bool:
    async with session.get(server.url + "/openapi.json") as response:
        paths = (await response.json())["paths"]
    return any(re.search(r"/elements/\{[^}]+\}/skip$", path) for path in paths)


async def test_retry_a_failed_execution_with_the_editor_s_changes(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "invoice", {"order_id": "A-1", "amount": 100.0})
        await open_execution(page, execution, "failed")

        # failed: the banner says where, Retry is the one button that applies
        banner = page.locator("#exec-error")
        await expect(banner).to_contain_text("Failed at price")
        await expect(page.locator("#do-retry")).to_be_enabled()
        for button in ("#do-pause", "#do-resume", "#do-cancel"):
            await expect(page.locator(button)).to_be_disabled()
        await expect(page.locator("#vars-retry")).to_be_enabled()
        await expect(page.locator("#vars-save")).to_be_hidden()
        editor = page.locator("#vars-editor")
        await expect(editor).to_have_value(re.compile(r'"order_id": "A-1"'))

        # a text that is not JSON is said next to the editor, nothing is sent
        await editor.fill("{oops")
        await page.click("#do-retry")
        await expect(page.locator("#vars-problem")).to_contain_text("the variables are not JSON")
        await expect(page.locator("#exec-status")).to_have_text("failed")

        # the missing discount added in the editor: the patch shows what is sent; Retry sends it with the reason
        await page.click("#vars-reset")  # back to the execution's variables
        await expect(editor).to_have_value(re.compile(r'^\{\n  "order_id"'))
        await expect(page.locator("#vars-problem")).to_be_hidden()
        variables = json.loads(await editor.input_value())
        assert variables["order"] == {"id": "A-1"}  # fetch's output: it ran once and is not run again
        await editor.fill(json.dumps({**variables, "discount": 0.1}, indent=2))
        await expect(page.locator("#vars-patch")).to_have_text('sends {"discount":0.1}')
        await page.fill("#reason", "discount was missing")
        await page.locator("#graph").scroll_into_view_if_needed()
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(path=str(DOCS / "console-repair-failed.png"), animations="disabled")
        await page.click("#do-retry")

        # it goes on from price, same id, and completes; the page follows it, the log says who and why
        await expect(page.locator("#exec-status")).to_have_text("completed")
        await expect(page.locator("#action-result")).to_contain_text(
            "retry: the execution is running again, from price"
        )
        await expect(banner).to_be_hidden()
        await expect(page.locator("#variables")).to_contain_text("90")
        await expect(page.locator("#log tbody tr.ev-retried")).to_have_count(1)
        await expect(page.locator("#log tbody tr.ev-retried")).to_contain_text("discount was missing")
        await expect(page.locator("#repair")).to_be_hidden()  # completed: nothing to repair
        await page.screenshot(path=str(DOCS / "console-repair-retried.png"), animations="disabled")
        assert real_problems(problems) == []


async def test_edit_a_paused_execution_s_variables_then_resume(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "approval", {"amount": 10.0, "note": "rush"})
        await open_execution(page, execution, "running")

        # running: the editor says when it applies, its text and Save greyed
        editor = page.locator("#vars-editor")
        await expect(page.locator("#vars-caption")).to_have_text("(can be changed while the execution is paused)")
        await expect(editor).to_be_hidden()
        await expect(page.locator("#vars-save")).to_be_disabled()
        await expect(page.locator("#do-retry")).to_have_count(0)

        await page.fill("#reason", "check the amount")
        await page.click("#do-pause")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(editor).to_be_editable()
        await expect(page.locator("#vars-save")).to_be_enabled()
        await expect(page.locator("#vars-retry")).to_be_hidden()

        # three names more than --max-variables allows: the server's 422, its details listed next to the editor
        await editor.fill('{"amount": 10, "note": "rush", "extra_a": 1, "extra_b": 2, "extra_c": 3}')
        await page.click("#vars-save")
        problem = page.locator("#vars-problem")
        await expect(problem).to_be_visible()
        await expect(problem).to_have_attribute("data-status", "422")
        await expect(problem.locator("strong")).to_contain_text("422 VALIDATION_ERROR")
        await expect(problem.locator("li")).not_to_have_count(0)
        await expect(problem).to_contain_text("at most 5 (--max-variables)")  # the limit is named
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await page.screenshot(path=str(DOCS / "console-repair-problem.png"), animations="disabled")

        # a good patch: amount changed, note removed; the log has it, the problem is gone
        await editor.fill('{"amount": 12.5}')
        await expect(page.locator("#vars-patch")).to_have_text('sends {"note":null,"amount":12.5}')
        await page.fill("#reason", "amount corrected by finance")
        await page.click("#vars-save")
        await expect(page.locator("#action-result")).to_have_text("variables saved: amount, note")
        await expect(problem).to_be_hidden()
        await expect(page.locator("#log tbody tr.ev-variables-changed")).to_contain_text("amount corrected by finance")
        await expect(editor).to_have_value(re.compile(r'^\{\s*"amount": 12.5\s*\}$'))  # read again, follows the reads
        lane = page.locator("#exec-blocked li[data-lane='main']")
        await expect(lane).to_have_attribute("data-kind", "paused")  # blockedOn read again with the rest
        await expect(lane).to_contain_text(": check the amount; then it waits for signal 'approval'")

        # resume, the signal, and the total is computed from the edited amount
        await page.click("#do-resume")
        await expect(page.locator("#exec-status")).to_have_text("running")
        await expect(lane).to_have_attribute("data-kind", "signal")
        await call(session, server, "POST", f"/executions/processes/{execution}/signals/approval", json={"ok": True})
        await expect(page.locator("#exec-status")).to_have_text("completed")
        await expect(page.locator("#variables")).to_contain_text("25")
        assert real_problems(problems) == []


async def test_buttons_are_greyed_where_their_operation_does_not_apply(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        steps = await has_step_controls(session, server)
        napping = await start(session, server, "nap", {})
        await open_execution(page, napping, "running")
        await expect(page.locator("#exec-blocked li[data-lane='main']")).to_have_attribute("data-kind", "delay")

        # running: pause and cancel; no retry; the editor read-only; on the element, only run-now (a delay)
        await expect(page.locator("#do-pause")).to_be_enabled()
        await expect(page.locator("#do-resume")).to_be_disabled()
        await expect(page.locator("#exec-error")).to_be_hidden()
        await expect(page.locator("#vars-save")).to_be_disabled()
        await page.locator('#graph g.node[data-key="nap"]').click()
        await expect(page.locator("#steps")).to_have_attribute("data-key", "nap")
        for verb in ("retry", "skip", "complete", "fail"):
            await expect(page.locator(f"#step-{verb}")).to_be_disabled()
            title = await page.locator(f"#step-{verb}").get_attribute("title")
            assert title is not None and ("no step controls" in title or "this one is running" in title), title
        run_now = page.locator("#step-run-now")
        if steps:
            await expect(run_now).to_be_enabled()
        else:
            await expect(run_now).to_be_disabled()
            await expect(run_now).to_have_attribute("title", re.compile("this server has no step controls"))

        # an element not on the stack: nothing applies to it
        await page.locator('#graph g.node[data-key="done"]').click()
        await expect(page.locator("#steps")).to_have_attribute("data-key", "done")
        for verb in ("retry", "skip", "complete", "fail", "run-now"):
            await expect(page.locator(f"#step-{verb}")).to_be_disabled()

        # cancelled: nothing applies any more
        await call(session, server, "POST", f"/executions/processes/{napping}/cancel")
        await expect(page.locator("#exec-status")).to_have_text("cancelled")
        for button in ("#do-pause", "#do-resume", "#do-cancel", "#step-run-now"):
            await expect(page.locator(button)).to_be_disabled()
        await expect(page.locator("#repair")).to_be_hidden()

        # failed: retry and (with the routes) the step controls of the element that failed; not run-now
        failed = await start(session, server, "invoice", {"order_id": "A-2", "amount": 1.0})
        await open_execution(page, failed, "failed")
        await expect(page.locator("#do-retry")).to_be_enabled()
        await page.locator('#graph g.node[data-key="price"]').click()
        await expect(page.locator("#steps")).to_have_attribute("data-key", "price")
        for verb in ("retry", "skip", "fail"):
            if steps:
                await expect(page.locator(f"#step-{verb}")).to_be_enabled()
            else:
                await expect(page.locator(f"#step-{verb}")).to_be_disabled()
        await expect(page.locator("#step-complete")).to_be_disabled()  # `price` is a set-variable, not a task
        await expect(page.locator("#step-run-now")).to_be_disabled()
        await expect(page.locator("#step-run-now")).to_have_attribute(
            "title", re.compile("no step controls|this one is failed")
        )
        assert real_problems(problems) == []


async def test_step_controls_on_the_element_picked_in_the_graph(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        if not await has_step_controls(session, server):
            pytest.skip("this server has no step-control routes yet (issue 20 point 3, branch h20-step)")

        # a failed execution: skip the element that failed, with an output; it is paused there, resume ends it
        failed = await start(session, server, "invoice", {"order_id": "A-3", "amount": 1.0})
        await open_execution(page, failed, "failed")
        await page.locator('#graph g.node[data-key="price"]').click()
        await page.fill("#step-output", "not json")
        await page.click("#step-skip")
        await expect(page.locator("#step-problem")).to_contain_text("the output is not JSON")
        await page.fill("#step-output", '{"total": 1.0}')
        await expect(page.locator("#step-complete")).to_be_disabled()  # a set-variable: Complete is for tasks
        await expect(page.locator("#step-complete")).to_have_attribute("title", re.compile("applies to a task"))
        await page.fill("#step-reason", "priced by hand")
        await page.screenshot(path=str(DOCS / "console-repair-steps.png"), animations="disabled")
        await page.click("#step-skip")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#log tbody")).to_contain_text("priced by hand")
        await page.click("#do-resume")
        await expect(page.locator("#exec-status")).to_have_text("completed")

        # run-now on a running execution's delay: it ends at once
        napping = await start(session, server, "nap", {})
        await open_execution(page, napping, "running")
        await page.locator('#graph g.node[data-key="nap"]').click()
        await page.click("#step-run-now")
        await expect(page.locator("#exec-status")).to_have_text("completed")
        await expect(page.locator('#graph g.node[data-key="nap"]')).to_have_attribute("data-status", "completed")

        # skip on a paused execution: the wait is skipped and its next followed on resume
        waiting = await start(session, server, "approval", {"amount": 2.0})
        await open_execution(page, waiting, "running")
        await page.click("#do-pause")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await page.locator('#graph g.node[data-key="approve"]').click()
        await page.fill("#step-output", '{"approvedBy": "console"}')
        await page.click("#step-skip")
        await expect(page.locator("#step-result")).to_contain_text("skip of approve done")
        await expect(page.locator('#graph g.node[data-key="approve"]')).to_have_attribute("data-status", "skipped")
        await page.click("#do-resume")
        await expect(page.locator("#exec-status")).to_have_text("completed")

        # fail needs an error and a type (said in the panel, nothing sent); with them the server takes it
        other = await start(session, server, "approval", {"amount": 3.0})
        await open_execution(page, other, "running")
        await page.click("#do-pause")
        await page.locator('#graph g.node[data-key="approve"]').click()
        await page.click("#step-fail")
        await expect(page.locator("#step-problem")).to_contain_text("Fail needs an error message and a type")
        await page.fill("#step-error", "rejected by hand")
        await page.fill("#step-error-type", "Rejected")
        await page.click("#step-fail")
        await expect(page.locator("#step-result")).to_contain_text("fail of approve done")
        assert real_problems(problems) == []
