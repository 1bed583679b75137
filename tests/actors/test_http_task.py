"""The built-in `http` handler inside a process: a 200 is the element's output, a 404 a caught HttpError, a host
--http-allow does not name a refusal that names the flag."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.nodes import CALLER, start, wait_status
from tests.support.processes import definition


@pytest.fixture
async def service() -> AsyncIterator[TestServer]:
    async def order(request: web.Request) -> web.Response:
        if request.match_info["id"] == "404":
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response({"id": request.match_info["id"], "state": "shipped"})

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["to"]})

    app = web.Application()
    app.router.add_get("/orders/{id}", order)
    app.router.add_get("/moved", moved)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


def _process(url: str) -> dict[str, object]:
    return definition(
        {
            "key": "fetch",
            "type": "task",
            "handler": "http",
            "input": {"url": url},
            "output": "order",
            "catch": [{"errors": ["HttpError"], "next": "missing", "into": "why"}],
        },
        {"key": "missing", "type": "set-variable", "set": {"missing": "why.error"}},
    )


async def test_an_http_task_calls_an_allowed_host_and_a_404_is_caught(
    redis: Redis, settings: Settings, service: TestServer
) -> None:
    base = f"http://127.0.0.1:{service.port}"
    async with Node(redis, settings, builtin_handlers([f"127.0.0.1:{service.port}"])) as engine:
        found = await start(engine, _process(f"'{base}/orders/' + id"), {"id": "7"})
        missing = await start(engine, _process(f"'{base}/orders/' + id"), {"id": "404"})
        assert await wait_status(engine, found, "completed") == "completed"
        assert await wait_status(engine, missing, "completed") == "completed"
        order = (await engine.state(CALLER, found)).memory["variables"]["order"]
        assert (order["status"], order["body"]) == (200, {"id": "7", "state": "shipped"})
        variables = (await engine.state(CALLER, missing)).memory["variables"]
        assert "404" in variables["missing"] and "order" not in variables


async def test_a_host_not_allowed_fails_the_task_naming_the_flag(redis: Redis, settings: Settings) -> None:
    async with Node(redis, settings, builtin_handlers()) as engine:
        execution_id = await start(
            engine,
            definition({"key": "f", "type": "task", "handler": "http", "input": {"url": "'http://example.com/'"}}),
        )
        assert await wait_status(engine, execution_id, "failed") == "failed"
        error = (await engine.status(CALLER, execution_id)).error
        assert error is not None and error["type"] == "HttpNotAllowed" and "--http-allow" in error["error"]
        assert error["attempts"] == 1


@pytest.mark.parametrize(
    ("location", "error_type"),
    [("file:///etc/passwd", "HttpNotAllowed"), ("http://[::1", "HttpBadRedirect"), ("", "HttpBadRedirect")],
)
async def test_a_redirect_out_of_http_or_to_no_url_fails_the_task_with_its_own_type(
    redis: Redis, settings: Settings, service: TestServer, location: str, error_type: str
) -> None:
    # before: file:/// failed as ValueError (retried), and a Location that is not a URL completed the task with 302
    url = f"http://127.0.0.1:{service.port}/moved?to={quote(location, safe='')}"
    async with Node(redis, settings, builtin_handlers([f"127.0.0.1:{service.port}"])) as engine:
        execution_id = await start(
            engine, definition({"key": "f", "type": "task", "handler": "http", "input": {"url": f"'{url}'"}})
        )
        assert await wait_status(engine, execution_id, "failed", "completed") == "failed"
        error = (await engine.status(CALLER, execution_id)).error
        assert error is not None and error["type"] == error_type, error
        assert error["attempts"] == 1
