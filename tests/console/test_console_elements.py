"""The console's execution page tells the truth about elements (issue 19, points 5 and 6), in a real browser
against a real `procengine serve`: the element that failed is drawn failed, an error shows its type once, a
paused execution whose stack cannot be decoded offers no resume, a wide process fits the page and zooms, a click
on an element opens its details (its input and every attempt), and paused time is what the API says."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from procengine.store.embedded import RedisServer
from tests.support.api import BASE
from tests.support.browser import CHROMIUM, open_page, real_problems
from tests.support.servers import Server, call, element_status, final_status, serving

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, Page, Route, expect

pytestmark = pytest.mark.timeout(120)

FLAKY = {
    "key": "flaky-charge",
    "threads": [
        {
            "key": "main",
            "elements": [
                {
                    "key": "charge",
                    "type": "task",
                    "handler": "fail",
                    "input": {"message": "'card declined'", "amount": "price * 2"},
                    "retry": {"maxAttempts": 3, "backoffMs": 150},
                    "next": "done",
                },
                {"key": "done", "type": "end"},
            ],
        }
    ],
}
"""A task that fails three times, 150 ms apart: its record's last attempt alone 'took 1 ms'."""
SLOW = {
    "key": "slow",
    "threads": [
        {
            "key": "main",
            "elements": [{"key": "nap", "type": "task", "handler": "sleep", "input": {"ms": "5000"}, "timeoutMs": 50}],
        }
    ],
}
"""A task that times out: its error ('timed out after 50 ms') does not hold its type (Timeout)."""
DECLINED = {"order_id": 8, "qty": 1, "unit_price": 20, "card": "4000-0000-0000-0002", "approval_ms": 1000}


@pytest.fixture
async def server(redis_server: RedisServer, prefix: str) -> AsyncIterator[Server]:
    async with serving(redis_server.url, prefix) as start:
        yield await start(
            *("--handlers", "examples.handlers"),
            *("--register", "examples/order-approval.yaml", "--register", "examples/demo.yaml"),
        )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def started(session: aiohttp.ClientSession, server: Server, body: dict[str, Any]) -> int:
    return int((await call(session, server, "POST", "/executions/processes", json=body))["executionID"])


async def a_failed(session: aiohttp.ClientSession, server: Server, definition: dict[str, Any], **variables: Any) -> int:
    await call(session, server, "POST", "/processes", json=definition)
    execution = await started(session, server, {"processKey": definition["key"], "variables": variables})
    assert (await final_status(session, server, execution))["status"] == "failed"
    return execution


async def declined_order(session: aiohttp.ClientSession, server: Server) -> int:
    execution = await started(session, server, {"processKey": "order-approval", "variables": DECLINED})
    assert (await final_status(session, server, execution))["status"] == "failed"
    return execution


async def open_execution(page: Page, server: Server, execution: int) -> None:
    await page.goto(f"{server.url}/#/executions/{execution}")
    await expect(page.locator("#elements tbody tr").first).to_be_visible()


async def test_the_element_that_failed_is_drawn_failed_as_the_legend_says(
    server: Server, session: aiohttp.ClientSession, browser: Browser
) -> None:
    # given an order whose card is declined: `charge` fails (caught), then the fail element `declined` fails it
    execution = await declined_order(session, server)
    async with open_page(browser) as (page, problems):
        await open_execution(page, server, execution)

        declined = page.locator('#graph g.node[data-key="declined"]')
        # then the element that failed the execution is failed (it stays on the stack for a retry), not stopped
        await expect(declined).to_have_attribute("data-status", "failed")
        await expect(declined.locator("text.st")).to_have_text("failed")
        assert "stopped" not in (await declined.get_attribute("class") or "")
        # and it is drawn in the legend's colour for failed
        legend = await page.locator("#legend .st-failed i").evaluate("i => getComputedStyle(i).backgroundColor")
        stroke = await declined.locator("rect.box").evaluate("r => getComputedStyle(r).stroke")
        assert stroke == legend
        await expect(page.locator('#graph g.node[data-key="charge"]')).to_have_attribute("data-status", "failed")
        assert real_problems(problems) == []


async def test_an_error_shows_its_type_once(server: Server, session: aiohttp.ClientSession, browser: Browser) -> None:
    # given a handler's exception (its error starts with its type) and a timeout (its error does not)
    flaky = await a_failed(session, server, FLAKY, price=21)
    slow = await a_failed(session, server, SLOW)
    async with open_page(browser) as (page, problems):
        await open_execution(page, server, flaky)

        once = "TaskFailed: card declined"
        await expect(page.locator('#elements tr[data-key="charge"] td.err')).to_have_text(once)
        await expect(page.locator("#exec-error")).to_contain_text(f"Failed at charge: {once} (after 3 attempts)")
        await expect(page.locator("#outputs")).to_contain_text(once)
        title = await page.locator('#graph g.node[data-key="charge"] > title').text_content()
        assert title is not None and f"error: {once}\n" in title
        assert "TaskFailed: TaskFailed" not in await page.locator("#view-execution").inner_text()

        await open_execution(page, server, slow)
        await expect(page.locator('#elements tr[data-key="nap"] td.err')).to_have_text("Timeout: timed out after 50 ms")
        await expect(page.locator("#exec-error")).to_contain_text("Failed at nap: Timeout: timed out after 50 ms")
        assert real_problems(problems) == []


async def test_a_paused_execution_whose_stack_cannot_be_decoded_offers_no_resume(
    server: Server, session: aiohttp.ClientSession, browser: Browser, redis_server: RedisServer, prefix: str
) -> None:
    # given a paused execution whose stack snapshot is not msgpack any more
    execution = await started(session, server, {"processKey": "demo"})
    await element_status(session, server, execution, "first_wait", "running")
    await call(session, server, "POST", f"/executions/processes/{execution}/pause")
    redis = Redis.from_url(redis_server.url)
    try:
        await redis.hset(f"{prefix}:exec:{{{execution}}}:state", "stack", b"\xc1")
    finally:
        await redis.aclose()
    state = await call(session, server, "GET", f"/executions/processes/{execution}/state")
    why = state["stack"]["error"]
    async with session.post(f"{server.url}{BASE}/executions/processes/{execution}/resume") as refused:
        assert refused.status == 409 and (await refused.json())["error"]["code"] == "STATE_CORRUPTED"

    async with open_page(browser) as (page, problems):
        await page.goto(f"{server.url}/#/executions/{execution}")

        # then the console says what GET .../state says, and offers cancel, not the resume the API refuses
        await expect(page.locator("#exec-status")).to_have_text("paused")
        await expect(page.locator("#stack-caption")).to_have_text("cannot be read")
        await expect(page.locator("#stack tbody")).to_contain_text(why)
        await expect(page.locator("#state-problem")).to_be_visible()
        await expect(page.locator("#state-problem")).to_contain_text(why)
        await expect(page.locator("#state-problem")).to_contain_text("409 STATE_CORRUPTED")
        await expect(page.locator("#do-resume")).to_be_disabled()
        await expect(page.locator("#do-cancel")).to_be_enabled()
        assert "entries" not in (await page.locator("#stack-caption").text_content() or "")
        assert real_problems(problems) == []


async def _scale(page: Page) -> float:
    return float(await page.locator("#graph svg.process-graph").get_attribute("data-scale") or "nan")


async def _inside(page: Page, key: str) -> bool:
    """Whether element `key` is within the graph's visible box (no scrolling needed to see it)."""
    node = await page.locator(f'#graph g.node[data-key="{key}"]').bounding_box()
    view = await page.locator("#graph").bounding_box()
    assert node is not None and view is not None
    return node["x"] >= view["x"] and node["x"] + node["width"] <= view["x"] + view["width"]


async def test_a_wide_process_fits_the_page_and_zooms(
    server: Server, session: aiohttp.ClientSession, browser: Browser
) -> None:
    # given order-approval (wider than 1,400 px at its own size), failed at its last column
    execution = await declined_order(session, server)
    narrow = await started(session, server, {"processKey": "demo"})
    async with open_page(browser) as (page, problems):
        await open_execution(page, server, execution)
        graph = page.locator("#graph")

        # then it is fitted to the width by default: the failed element is in view, nothing to scroll sideways
        await expect(page.locator("#zoom-fit")).to_have_attribute("aria-pressed", "true")
        assert await _scale(page) < 1
        assert await _inside(page, "declined")
        assert await graph.evaluate("g => g.scrollWidth <= g.clientWidth")
        fitted = await _scale(page)

        # zoom in: bigger, and the box scrolls; 100 %: its own size; Fit: back to the whole graph
        await page.click("#zoom-in")
        assert await _scale(page) > fitted
        await expect(page.locator("#zoom-fit")).to_have_attribute("aria-pressed", "false")
        await page.click("#zoom-actual")
        await expect(page.locator("#zoom-level")).to_have_text("100%")
        assert await graph.evaluate("g => g.scrollWidth > g.clientWidth")
        assert not await _inside(page, "declined")
        await page.click("#zoom-out")
        assert await _scale(page) < 1
        await page.click("#zoom-fit")
        assert await _scale(page) == fitted and await _inside(page, "declined")

        # a narrower window fits again, smaller
        await page.set_viewport_size({"width": 1000, "height": 900})
        await expect(page.locator("#graph svg.process-graph")).not_to_have_attribute("data-scale", f"{fitted:.3f}")
        assert await _scale(page) < fitted and await _inside(page, "declined")

        # and a process narrower than the page is shown at its own size (fit never enlarges)
        await page.set_viewport_size({"width": 1400, "height": 900})
        await open_execution(page, server, narrow)
        await expect(page.locator("#zoom-level")).to_have_text("100%")
        assert await _scale(page) == 1
        assert real_problems(problems) == []


async def test_a_click_on_an_element_shows_its_details_its_input_and_every_attempt(
    server: Server, session: aiohttp.ClientSession, browser: Browser
) -> None:
    # given a task that failed three times, 150 ms apart
    execution = await a_failed(session, server, FLAKY, price=21)
    record = next(
        e
        for e in (await call(session, server, "GET", f"/executions/processes/{execution}/elements"))["items"]
        if e["key"] == "charge"
    )
    async with open_page(browser) as (page, problems):
        await open_execution(page, server, execution)
        details = page.locator("#details")
        await expect(details).to_be_hidden()

        # when its element is clicked in the graph
        await page.locator('#graph g.node[data-key="charge"]').click()

        # then its details show the record: status, attempts, times, the error once
        await expect(details).to_be_visible()
        await expect(details).to_have_attribute("data-key", "charge")
        await expect(page.locator('#graph g.node[data-key="charge"]')).to_have_class(re.compile(r"\bselected\b"))
        facts = details.locator(".details-facts")
        await expect(facts).to_contain_text("Attempts3")
        await expect(facts.locator(f'span[title="{record["startedAt"]}"]')).to_have_count(1)
        await expect(facts.locator(f'span[title="{record["stoppedAt"]}"]')).to_have_count(1)
        await expect(details.locator(".details-error")).to_have_text("TaskFailed: card declined")
        # its evaluated input
        shown_input = await details.locator(".details-input pre").text_content()
        assert shown_input is not None and json.loads(shown_input) == {"message": "card declined", "amount": 42}
        # and each attempt with its start, duration and error
        rows = details.locator("table.attempts tbody tr")
        await expect(rows).to_have_count(3)
        for number, attempt in enumerate(record["attemptHistory"], start=1):
            row = details.locator(f'table.attempts tr[data-attempt="{number}"]')
            await expect(row.locator("td").nth(1)).to_have_text("failed")
            await expect(row.locator("td").nth(2)).to_have_attribute("title", attempt["startedAt"])
            await expect(row.locator("td.took")).to_have_text(f"{attempt['durationMs']} ms")
            await expect(row.locator("td.err")).to_have_text("TaskFailed: card declined")
        # the elements table says the last attempt was one of three, and over how long
        took = await page.locator('#elements tr[data-key="charge"] td.took').text_content()
        assert took is not None and re.fullmatch(r"\d+ ms · 3 attempts over \d+ ms", took), took
        span = int(took.rsplit("over ", 1)[1].split(" ")[0])
        assert span >= 300  # two backoffs of 150 ms

        # an element not reached says so; Close closes; a row of the elements table opens them; so does Enter
        await page.locator('#graph g.node[data-key="done"]').click()
        await expect(details).to_have_attribute("data-key", "done")
        await expect(details).to_contain_text("Not reached")
        await page.click("#details-close")
        await expect(details).to_be_hidden()
        await page.locator('#elements tr[data-key="charge"]').click()
        await expect(details).to_have_attribute("data-key", "charge")
        await page.click("#details-close")
        await page.locator('#graph g.node[data-key="charge"]').focus()
        await page.keyboard.press("Enter")
        await expect(details).to_have_attribute("data-key", "charge")
        assert real_problems(problems) == []


async def test_the_details_show_every_field_of_a_record(
    server: Server, session: aiohttp.ClientSession, browser: Browser
) -> None:
    # given a record with a field the panel has no place of its own for (a later version's, say)
    execution = await a_failed(session, server, FLAKY, price=1)

    async def with_more(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        for item in body["data"]["items"]:
            item["iteration"] = {"index": 7}
        await route.fulfill(response=response, json=body)

    async with open_page(browser) as (page, problems):
        await page.route(f"**{BASE}/executions/processes/{execution}/elements", with_more)
        await open_execution(page, server, execution)
        await page.locator('#graph g.node[data-key="charge"]').click()

        # then it is listed with the rest
        await expect(page.locator("#details")).to_contain_text("Other fields")
        await expect(page.locator("#details")).to_contain_text('"index": 7')
        await page.unroute_all(behavior="ignoreErrors")
        assert real_problems(problems) == []


async def test_paused_time_is_what_the_api_says(
    server: Server, session: aiohttp.ClientSession, browser: Browser
) -> None:
    # given a paused execution whose delay was frozen by the pause
    execution = await started(session, server, {"processKey": "demo"})
    await element_status(session, server, execution, "first_wait", "running")
    await call(session, server, "POST", f"/executions/processes/{execution}/pause")
    async with open_page(browser) as (page, problems):
        await open_execution(page, server, execution)

        # then the frozen delay's time is up to the pause, not counted on by the page's clock
        took = page.locator('#elements tr[data-key="first_wait"] td.took')
        await expect(took).to_have_text(re.compile(r"\(paused\)$"))
        assert "…" not in (await took.text_content() or "")

        # and when the API says a pause of 65 s so far (its pausedDurationMs counts the pause in progress), the
        # page shows 65 s, not that plus its own count since pausedAt; threads read what the API says
        paused_at = datetime.now(UTC) - timedelta(seconds=65)

        async def sixty_five_seconds(route: Route) -> None:
            response = await route.fetch()
            body = await response.json()
            timing = body["data"]["timing"]
            timing["pausedAt"] = paused_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            timing["pausedDurationMs"] = 65_000
            for thread in body["data"]["threads"]:
                thread["status"] = "paused"
            await route.fulfill(response=response, json=body)

        await page.route(f"**{BASE}/executions/processes/{execution}/status", sixty_five_seconds)
        await page.reload()
        facts = page.locator("#exec-facts")
        paused_in_all = facts.locator("div", has_text="Paused in all").locator("dd")
        await expect(paused_in_all).to_have_text(re.compile(r"^1m [5-7]s$"))
        await expect(facts.locator(".mini.st-paused")).to_have_count(2)
        await page.unroute_all(behavior="ignoreErrors")  # a read still in the route when the page closes
        assert real_problems(problems) == []
