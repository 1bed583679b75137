"""The console in a real browser (Debian's Chromium driven by Playwright) against a real `procengine serve`.

It opens the console without a token (the 401 shows, no data), enters the token, watches an execution started
through the API appear in the list, opens it, pauses, resumes and signals it with the console's own controls,
and sees the status, the graph and the log follow without a reload (the event streams). It also keeps the two
screenshots of the docs: docs/console-list.png and docs/console-execution.png.
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

from procengine.http.console.static_routes import STATIC_DIR
from procengine.store.embedded import RedisServer
from tests.support.api import BASE
from tests.support.browser import CHROMIUM, WAIT_MS, open_page, real_problems
from tests.support.paths import REPO
from tests.support.servers import Server, call, serving

if not os.path.exists(CHROMIUM):
    pytest.skip(
        "no Chromium: apt-get install chromium (Debian) to run the console's browser tests", allow_module_level=True
    )

from playwright.async_api import Browser, Page, Response, Route, expect

TOKEN = "tok-console"
DOCS = REPO / "docs" if os.environ.get("PROCENGINE_UPDATE_SCREENSHOTS") else Path(tempfile.gettempdir())
"""Where the screenshots go: docs/ for the README with PROCENGINE_UPDATE_SCREENSHOTS=1, else a temporary
directory, so that a test run leaves the tree as it found it (the pictures hold times)."""
EVERY_KIND = """
key: every-kind
threads:
  - key: main
    elements:
      - {key: prepare, type: set-variable, set: {items: "[1, 2, 3]", big: "true"}, next: check}
      - {key: check, type: if-condition, condition: big, then: route, else: give_up}
      - {key: route, type: switch, cases: [{when: "size(items) > 2", next: fan}], default: give_up}
      - key: fan
        type: for-each
        items: items
        as: n
        maxConcurrency: 2
        body: {elements: [{key: double, type: task, handler: echo, input: {n: "n * 2"}}]}
        next: both
      - key: both
        type: parallel
        branches:
          - {key: wait, elements: [{key: hold, type: wait-signal, signal: go}]}
          - {key: nap, elements: [{key: short, type: delay, durationMs: 50}]}
        next: sub
      - {key: sub, type: call-process, process: demo, next: done}
      - {key: give_up, type: fail, message: "'no'"}
      - {key: done, type: end}
"""
"""Every element type: a condition, a switch, a for-each, a parallel with a wait, a call of the demo, a fail."""
pytestmark = pytest.mark.timeout(120)


async def start_demo(session: aiohttp.ClientSession, server: Server) -> int:
    started: dict[str, Any] = await call(session, server, "POST", "/executions/processes", json={"processKey": "demo"})
    return int(started["executionID"])


async def test_the_console_follows_an_execution_live(redis_server: RedisServer, prefix: str, browser: Browser) -> None:
    async with (
        serving(redis_server.url, prefix) as start,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session,
    ):
        server = await start("--register", "examples/demo.yaml", "--token", f"{TOKEN}=acme")
        async with open_page(browser) as (page, problems):
            await follow_an_execution(session, server, page, problems)


async def follow_an_execution(session: aiohttp.ClientSession, server: Server, page: Page, problems: list[str]) -> None:
    # Without a token: the API's 401, and no data.
    await page.goto(server.url + "/")
    await expect(page.locator("#error")).to_contain_text("401 UNAUTHORIZED")
    await expect(page.locator("#error")).to_contain_text("missing bearer token")
    await expect(page.locator("#view-list")).to_be_hidden()
    await expect(page.locator("#executions tbody tr")).to_have_count(0)

    # With the token (kept in sessionStorage): the list, live.
    await page.fill("#token", TOKEN)
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#error")).to_be_hidden()
    await expect(page.locator("#view-list")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('procengine.console.token')") == TOKEN
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await expect(page.locator('.count[data-status="all"] .n')).to_have_text("0")

    first = await start_demo(session, server)  # started through the API, after the page was read
    row = page.locator(f'#executions tr[data-id="{first}"]')
    await expect(row).to_be_visible()  # came in on the status stream: no reload
    await expect(row.locator(".badge")).to_have_text("running")
    await expect(page.locator('.count[data-status="running"] .n')).to_have_text("1")
    how = await page.locator(".count-note").get_attribute("title")
    assert how is not None and "GET /executions/processes" in how  # the tooltip says what was counted
    await page.evaluate("window.__notReloaded = true")

    # The execution's log stream breaks once (an id and nothing else): it is opened again after that id.
    last_event_ids: list[str | None] = []
    reopened = asyncio.Event()

    async def break_the_first_stream(route: Route) -> None:
        last_event_ids.append(route.request.headers.get("last-event-id"))
        if len(last_event_ids) == 1:
            await route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body="id: 1-0\n\n")
        else:
            reopened.set()
            await route.continue_()

    await page.route(f"**{BASE}/executions/processes/{first}/events", break_the_first_stream)

    # One execution: its graph, coloured by the elements' statuses.
    await row.locator("a").first.click()
    await expect(page.locator("#view-execution")).to_be_visible()
    await expect(page.locator("#exec-status")).to_have_text("running")
    graph = page.locator("#graph svg.process-graph")
    node = graph.locator('g.node[data-key="first_wait"]')
    await expect(node).to_have_attribute("data-status", "running")
    await expect(graph.locator('g.node[data-key="hello"]')).to_have_attribute("data-status", "completed")
    await expect(graph.locator('g.node[data-key="approve"]')).to_have_attribute("data-status", "running")
    await expect(graph.locator('g.node[data-key="done"]')).to_have_attribute("data-status", "idle")
    hello_title = await graph.locator('g.node[data-key="hello"] > title').text_content()
    assert hello_title is not None and "attempts: 1" in hello_title and "took:" in hello_title
    await expect(page.locator("#variables")).to_contain_text("hello from procengine")
    await expect(page.locator("#outputs")).to_contain_text("hello")
    await expect(page.locator("#log tbody")).to_contain_text("started")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    async with asyncio.timeout(WAIT_MS / 1000):
        await reopened.wait()
    assert last_event_ids[0] is not None and re.fullmatch(r"\d+-\d+", last_event_ids[0])  # after GET .../log
    assert last_event_ids[1] == "1-0"  # the replay after 1-0 repeats the whole log ...
    await expect(page.locator("#log tbody tr.ev-started")).to_have_count(1)  # ... shown once

    # Pause with a reason: status, graph and log follow.
    await page.fill("#reason", "looked at in the console")
    await page.click("#do-pause")
    await expect(page.locator("#exec-status")).to_have_text("paused")
    await expect(node).to_have_attribute("data-frozen", "true")
    await expect(node.locator("text.st")).to_have_text("paused (running)")
    await expect(page.locator("#log tbody")).to_contain_text("looked at in the console")
    await expect(page.locator("#do-resume")).to_be_enabled()
    await expect(page.locator("#do-pause")).to_be_disabled()

    # Resume.
    await page.click("#do-resume")
    await expect(page.locator("#exec-status")).to_have_text("running")
    await expect(node).to_have_attribute("data-frozen", "false")
    await expect(page.locator("#log tbody tr.ev-resumed")).to_have_count(1)

    # A signal with a JSON payload through the form; the wait completes (told by the log stream).
    await page.fill("#signal-name", "approval")
    await page.fill("#signal-payload", '{"approvedBy": "dana", "note": "ok"}')
    await page.click("#signal-form button[type=submit]")
    await expect(page.locator("#action-result")).to_contain_text("signal 'approval' accepted")
    await expect(graph.locator('g.node[data-key="approve"]')).to_have_attribute("data-status", "completed")
    await expect(graph.locator('g.node[data-key="approved"]')).to_have_attribute("data-status", "completed")
    await expect(page.locator("#variables")).to_contain_text("dana")

    # A pause from elsewhere (the API) shows up too: only the event stream can have told the page.
    await call(session, server, "POST", f"/executions/processes/{first}/pause", json={"reason": "from the API"})
    await expect(page.locator("#exec-status")).to_have_text("paused")
    await expect(page.locator("#log tbody")).to_contain_text("from the API")
    await expect(node).to_have_attribute("data-frozen", "true")
    await page.locator("#graph").scroll_into_view_if_needed()
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(DOCS / "console-execution.png"), animations="disabled")

    # Back to the list: more executions, one cancelled, the counts and the filters.
    second = await start_demo(session, server)
    third = await start_demo(session, server)
    await call(session, server, "POST", f"/executions/processes/{third}/cancel", json={"reason": "not needed"})
    await page.click(".crumbs a")
    await expect(page.locator(f'#executions tr[data-id="{second}"] .badge')).to_have_text("running")
    await expect(page.locator(f'#executions tr[data-id="{third}"] .badge')).to_have_text("cancelled")
    await expect(page.locator(f'#executions tr[data-id="{first}"] .badge')).to_have_text("paused")
    await expect(page.locator('.count[data-status="all"] .n')).to_have_text("3")
    await expect(page.locator('.count[data-status="paused"] .n')).to_have_text("1")
    await expect(page.locator(f'#executions tr[data-id="{first}"] .progress .label')).to_contain_text("%")
    await call(session, server, "POST", f"/executions/processes/{first}/resume")
    await call(session, server, "POST", f"/executions/processes/{second}/pause")
    await expect(page.locator(f'#executions tr[data-id="{first}"] .badge')).to_have_text("running")
    await expect(page.locator(f'#executions tr[data-id="{second}"] .badge')).to_have_text("paused")
    await expect(page.locator('.count[data-status="running"] .n')).to_have_text("1")
    await expect(page.locator('.count[data-status="paused"] .n')).to_have_text("1")
    await page.screenshot(path=str(DOCS / "console-list.png"), animations="disabled")
    for name in ("console-list.png", "console-execution.png"):
        assert (DOCS / name).stat().st_size > 10_000, name

    await page.select_option("#filter-status", "cancelled")
    await expect(page.locator("#executions tbody tr")).to_have_count(1)
    await expect(page.locator(f'#executions tr[data-id="{third}"]')).to_be_visible()

    # Every element type in one graph, a call-process's child and the way back to its parent.
    await call(session, server, "POST", "/processes", data=EVERY_KIND, headers={"Content-Type": "application/yaml"})
    parent = int(
        (await call(session, server, "POST", "/executions/processes", json={"processKey": "every-kind"}))["executionID"]
    )
    await page.evaluate(f"location.hash = '#/executions/{parent}'")
    graph = page.locator("#graph svg.process-graph")
    await expect(graph.locator('g.node[data-key="hold"]')).to_have_attribute("data-status", "running")
    for done in ("prepare", "check", "route", "fan", "double", "short"):
        await expect(graph.locator(f'g.node[data-key="{done}"]')).to_have_attribute("data-status", "completed")
    for idle in ("sub", "give_up", "done"):
        await expect(graph.locator(f'g.node[data-key="{idle}"]')).to_have_attribute("data-status", "idle")
    await expect(graph.locator('g.node[data-key="both"]')).to_have_attribute("data-status", "running")
    kinds = await graph.locator("g.node").evaluate_all("nodes => [...new Set(nodes.map(n => n.dataset.type))].sort()")
    every_type = "task if-condition switch set-variable delay wait-signal parallel for-each call-process fail end"
    assert kinds == sorted(every_type.split())
    await expect(graph.locator("g.edge.e-branch text")).to_have_text(["then", "else", "case 1", "default"])
    await call(session, server, "POST", f"/executions/processes/{parent}/signals/go", json={"ok": True})
    child_link = graph.locator('g.node[data-key="sub"] a.child')
    await expect(child_link).to_contain_text("child #")
    await expect(graph.locator('g.node[data-key="sub"]')).to_have_attribute("data-status", "running")
    await child_link.click()
    await expect(page.locator("#exec-process")).to_contain_text("demo v1")
    await expect(page.locator("#exec-facts")).to_contain_text(f"#{parent}")
    await page.locator("#exec-facts a", has_text=f"#{parent}").click()
    await expect(page.locator("#exec-title")).to_have_text(f"Execution #{parent}")

    # The search by id opens the execution; an unknown id shows the API's 404.
    await page.fill("#search-id", str(second))
    await page.click("#search button[type=submit]")
    await expect(page.locator("#exec-title")).to_have_text(f"Execution #{second}")
    assert await page.evaluate("window.__notReloaded === true")  # all of the above without a reload
    await page.goto(server.url + "/#/executions/999999")
    await expect(page.locator("#error")).to_contain_text("404 NOT_FOUND")
    await expect(page.locator("#view-execution")).to_be_hidden()

    assert real_problems(problems) == []


async def test_without_tokens_configured_the_console_needs_none(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with serving(redis_server.url, prefix) as start, aiohttp.ClientSession() as session:
        server = await start("--register", "examples/demo.yaml")
        execution = await start_demo(session, server)
        async with open_page(browser) as (page, problems):
            await page.goto(server.url + "/")

            await expect(page.locator(f'#executions tr[data-id="{execution}"] .badge')).to_have_text("running")
            await expect(page.locator("#error")).to_be_hidden()
            await expect(page.locator("#live")).to_have_attribute("data-state", "live")
            await call(session, server, "POST", f"/executions/processes/{execution}/cancel")
            await expect(page.locator(f'#executions tr[data-id="{execution}"] .badge')).to_have_text("cancelled")
            assert real_problems(problems) == []


async def test_the_browser_loads_every_module_as_javascript(
    redis_server: RedisServer, prefix: str, browser: Browser
) -> None:
    async with serving(redis_server.url, prefix) as start:
        server = await start()
        async with open_page(browser) as (page, problems):
            scripts: dict[str, str | None] = {}

            def on_response(response: Response) -> None:
                if response.request.resource_type == "script":
                    scripts[response.url.removeprefix(server.url)] = response.headers.get("content-type")

            page.on("response", on_response)
            await page.goto(server.url + "/")
            await expect(page.locator("#view-list")).to_be_visible()  # the modules ran: the list is drawn

            every_module = {f"/console/{path.name}" for path in STATIC_DIR.glob("*.js")}
            assert scripts == dict.fromkeys(every_module, "text/javascript; charset=utf-8")
            assert real_problems(problems) == []
