"""The step controls' Move lane here and Change policy, in a real browser (issue 20, points 3 and 4 in the console):
a lane of a failed execution moved past the element that failed, the server's 409 for a lane waiting at a fan-out
shown in the panel, a task's retry policy changed while it waits for its backoff (nothing filled in: nothing sent;
a policy the server refuses: its 422 in the panel), and both greyed, with a title that says why, where they do not
apply."""

from __future__ import annotations

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
"""Where the screenshot goes: docs/ with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary directory."""
pytestmark = pytest.mark.timeout(120)

INVOICE = yaml.safe_load((REPO / "examples" / "invoice.yaml").read_text())
"""Fails at `price` when started without a `discount`."""
CHECKS = {
    "key": "checks",
    "threads": [
        {
            "key": "main",
            "elements": [
                {
                    "key": "checks",
                    "type": "parallel",
                    "branches": [
                        {
                            "key": "credit",
                            "elements": [{"key": "credit_ok", "type": "wait-signal", "signal": "credit"}],
                        },
                        {"key": "fraud", "elements": [{"key": "fraud_ok", "type": "wait-signal", "signal": "fraud"}]},
                    ],
                    "next": "bill",
                },
                {"key": "bill", "type": "set-variable", "set": {"billed": "true"}, "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""A parallel whose two branches wait for signals: its thread's lane waits at the fan-out (a move there is 409)."""
CHARGE = {
    "key": "charge",
    "threads": [
        {
            "key": "main",
            "elements": [
                {
                    "key": "charge",
                    "type": "task",
                    "handler": "charge-card",
                    "input": {"card": "card"},
                    "retry": {"maxAttempts": 5, "backoffMs": 600_000},
                    "next": "done",
                },
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""A task that fails for the declined test card and waits ten minutes before each of its 5 attempts."""
DECLINED = "4000-0000-0000-0002"


def console(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> AbstractAsyncContextManager[tuple[Server, aiohttp.ClientSession, Page, list[str]]]:
    return console_with(redis_server, prefix, browser, (INVOICE, CHECKS, CHARGE))


async def pick(page: Page, key: str) -> None:
    await page.locator(f'#graph g.node[data-key="{key}"]').click()
    await expect(page.locator("#steps")).to_have_attribute("data-key", key)


async def test_move_a_lane_past_the_element_that_failed(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        # failed at price: `done` picked, the lane main is the one that can go on from it
        failed = await start(session, server, "invoice", {"order_id": "A-1", "amount": 1.0})
        await open_execution(page, failed, "failed")
        await pick(page, "done")
        move = page.locator("#step-move")
        await expect(move).to_be_enabled()
        await expect(move).to_have_attribute("title", re.compile(r"lane main goes on from done"))
        await expect(page.locator("#move-lane")).to_have_value("main")
        await expect(page.locator("#move-lane")).to_be_disabled()  # one lane: nothing to choose
        await expect(page.locator("#step-policy")).to_be_disabled()  # failed, and an end: no policy
        await expect(page.locator("#step-policy")).to_have_attribute("title", re.compile("this one is failed"))

        await page.fill("#step-reason", "priced by hand elsewhere")
        await move.click()
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#action-result")).to_contain_text(
            "lane main moved before done: the execution is paused"
        )
        await expect(page.locator("#log tbody tr.ev-lane-moved")).to_contain_text("priced by hand elsewhere")
        await page.click("#do-resume")
        await expect(page.locator("#exec-status")).to_have_text("completed")
        await expect(page.locator('#graph g.node[data-key="price"]')).not_to_have_attribute("data-status", "completed")
        await pick(page, "done")
        await expect(move).to_be_disabled()  # completed: nothing to move
        await expect(move).to_have_attribute("title", re.compile("this one is completed"))
        assert real_problems(problems) == []


async def test_a_move_the_server_refuses_and_where_a_move_does_not_apply(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "checks", {})
        await open_execution(page, execution, "running")

        # running: greyed, its title says why
        await pick(page, "bill")
        move = page.locator("#step-move")
        await expect(move).to_be_disabled()
        await expect(move).to_have_attribute(
            "title", re.compile("applies to a paused or failed execution; this one is running")
        )

        # paused: a branch's element offers its own lane only
        await page.click("#do-pause")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await pick(page, "credit_ok")
        await expect(move).to_be_enabled()
        await expect(page.locator("#move-lane option")).to_have_text(["main/checks[credit]"])

        # the thread's lane waits at the parallel whose branches are on the stack: the server's 409, in the panel
        await pick(page, "bill")
        await expect(page.locator("#move-lane")).to_have_value("main")
        await move.click()
        refused = page.locator("#step-problem")
        await expect(refused).to_be_visible()
        await expect(refused).to_have_attribute("data-status", "409")
        await expect(refused.locator("strong")).to_contain_text("409")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#log tbody tr.ev-lane-moved")).to_have_count(0)
        assert real_problems(problems) == []


async def test_change_the_policy_of_a_task_waiting_for_its_backoff(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "charge", {"card": DECLINED})
        await open_execution(page, execution, "running")
        await expect(page.locator("#exec-blocked li[data-lane='main']")).to_have_attribute("data-kind", "backoff")
        await pick(page, "charge")
        change = page.locator("#step-policy")
        await expect(change).to_be_enabled()
        await expect(page.locator("#step-move")).to_be_disabled()  # running
        # the placeholders are the policy in force: the definition's
        await expect(page.locator("#policy-max-attempts")).to_have_attribute("placeholder", "5")
        await expect(page.locator("#policy-backoff-ms")).to_have_attribute("placeholder", "600000")
        await expect(page.locator("#policy-timeout-ms")).to_have_attribute("placeholder", "none")

        # nothing filled in: said in the panel, nothing sent
        await change.click()
        problem = page.locator("#step-problem")
        await expect(problem).to_contain_text("nothing to change")
        # a policy the server refuses: its 422 and details in the panel
        await page.fill("#policy-max-attempts", "0")
        await change.click()
        await expect(problem).to_have_attribute("data-status", "422")
        await expect(problem.locator("strong")).to_contain_text("422 VALIDATION_ERROR")
        await expect(problem.locator("li")).not_to_have_count(0)
        await expect(page.locator("#log tbody tr.ev-element-policy-changed")).to_have_count(0)

        # two attempts at most and a timeout: what is sent (the retry fields left empty as they are in force)
        await page.fill("#policy-max-attempts", "2")
        await page.fill("#policy-timeout-ms", "5000")
        await expect(page.locator("#policy-sends")).to_have_text(
            'sends {"retry":{"maxAttempts":2,"backoffMs":600000,"backoffMultiplier":2,"maxBackoffMs":3600000},'
            '"timeoutMs":5000}'
        )
        await page.fill("#step-reason", "the gateway will not change its mind")
        await page.screenshot(path=str(DOCS / "console-repair-policy.png"), animations="disabled")
        await change.click()
        await expect(page.locator("#step-result")).to_contain_text(
            "policy change of charge done: the execution is running"
        )
        await expect(problem).to_be_hidden()
        await expect(page.locator("#log tbody tr.ev-element-policy-changed")).to_contain_text(
            "the gateway will not change its mind"
        )
        await expect(page.locator("#policy-max-attempts")).to_have_value("")  # emptied: the placeholders, read
        await expect(page.locator("#policy-max-attempts")).to_have_attribute("placeholder", "2")  # again, have it
        await expect(page.locator("#policy-backoff-ms")).to_have_attribute("placeholder", "600000")  # kept
        await expect(page.locator("#policy-timeout-ms")).to_have_attribute("placeholder", "5000")

        # the backoff under way kept its time: run now, and the second attempt is the last one
        await page.click("#step-run-now")
        await expect(page.locator("#exec-status")).to_have_text("failed")
        await expect(page.locator("#exec-error")).to_contain_text("CardDeclined")
        await expect(change).to_be_disabled()
        await expect(change).to_have_attribute(
            "title", re.compile("applies to a running or paused execution; this one is failed")
        )
        assert real_problems(problems) == []


async def test_change_policy_applies_to_a_pending_task_only(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with console(redis_server, prefix, browser) as (server, session, page, problems):
        execution = await start(session, server, "checks", {})
        await open_execution(page, execution, "running")
        await pick(page, "credit_ok")  # pending, but a wait-signal
        change = page.locator("#step-policy")
        await expect(change).to_be_disabled()
        await expect(change).to_have_attribute("title", re.compile("applies to a task .*this one is a wait-signal"))
        await expect(page.locator("#policy-max-attempts")).to_be_disabled()
        await expect(page.locator("#policy-max-attempts")).to_have_attribute("placeholder", "")  # no policy

        charging = await start(session, server, "charge", {"card": DECLINED})
        await open_execution(page, charging, "running")
        await pick(page, "done")  # an end, not on the stack
        await expect(change).to_be_disabled()
        await page.click("#do-pause")
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await pick(page, "charge")  # paused: it applies too
        await expect(change).to_be_enabled()
        await call(session, server, "POST", f"/executions/processes/{charging}/cancel")
        await expect(page.locator("#exec-status")).to_have_text("cancelled")
        await expect(change).to_be_disabled()
        assert real_problems(problems) == []
