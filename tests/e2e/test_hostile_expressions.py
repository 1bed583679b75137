"""Hostile CEL through the front door (issue 17, items 1 and 2): refused at registration with a 422 that names
the element and the limit, and an expression that passes every estimate but runs long stops at its deadline
while /health keeps answering. (The expressions that crashed the extension itself run in a child process:
tests/engine/test_crashers.py.)"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.engine.limits import (
    EXPRESSION_DEADLINE_S,
    MAX_COMPREHENSION_NESTING,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_NESTING,
)
from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.api import BASE

Client = TestClient[Any, Any]
TEN = "[" + ", ".join(str(i) for i in range(10)) + "]"


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    async with (
        Node(redis, settings, builtin_handlers()) as engine,
        TestClient(TestServer(create_app(engine, settings))) as client,
    ):
        yield client


def _definition(key: str, sources: dict[str, str]) -> dict[str, Any]:
    elements = [{"key": name, "type": "set-variable", "set": {"x": source}} for name, source in sources.items()]
    for element, after in itertools.pairwise(elements):
        element["next"] = after["key"]
    return {"key": key, "threads": [{"key": "main", "elements": elements}]}


async def test_every_expression_over_a_limit_is_listed_with_its_element_and_the_limit(client: Client) -> None:
    definition = _definition(
        "hostile",
        {
            "long": "[" + ",".join(["1"] * (MAX_EXPRESSION_LENGTH // 2 + 1)) + "]",
            "deep": "+".join(["1"] * (MAX_EXPRESSION_DEPTH + 2)),
            "nested": "(" * (MAX_EXPRESSION_NESTING + 1) + "1" + ")" * (MAX_EXPRESSION_NESTING + 1),
            "maps": f"{TEN}.map(a, {TEN}.map(b, {TEN}.map(c, {TEN}.map(d, {TEN}.map(e, {TEN}.map(f, a))))))",
            "fine": "1 + 1",
        },
    )
    response = await client.post(f"{BASE}/processes", json=definition)
    body = await response.json()

    assert response.status == 422, body
    details = body["error"]["details"]
    assert len(details) == 4, details
    expected = {
        "long": f"characters long; at most {MAX_EXPRESSION_LENGTH:,}",
        "deep": f"operators deep; at most {MAX_EXPRESSION_DEPTH}",
        "nested": f"nests brackets {MAX_EXPRESSION_NESTING + 1} deep; at most {MAX_EXPRESSION_NESTING}",
        "maps": f"nests 6 comprehensions (map, filter, all, exists, exists_one) in one another; at most "
        f"{MAX_COMPREHENSION_NESTING}",
    }
    for (element, limit), detail in zip(expected.items(), details, strict=True):
        assert detail.startswith(f"element {element!r}: expression "), detail
        assert detail.endswith(limit), detail
        assert len(detail) < 300  # the source is quoted, not echoed back whole


async def test_a_long_expression_stops_at_its_deadline_and_health_answers_meanwhile(client: Client) -> None:
    # Within --max-expression-cost (1,000 items, n^2): 76 s in-process, on the event loop, before the fix.
    definition = _definition("slow", {"calc": "l.map(a, s + s).size()"})
    assert (await client.post(f"{BASE}/processes", json=definition)).status == 201
    start = {"processKey": "slow", "variables": {"l": list(range(1000)), "s": "x" * 100_000}}
    response = await client.post(f"{BASE}/executions/processes", json=start)
    assert response.status == 201, await response.text()
    execution = (await response.json())["data"]["executionID"]

    slowest = 0.0
    status: dict[str, Any] = {"status": "running"}
    began = time.monotonic()
    while status["status"] == "running":
        assert time.monotonic() - began < 30, status
        sent = time.monotonic()
        assert (await client.get("/health")).status == 200
        slowest = max(slowest, time.monotonic() - sent)
        status = (await (await client.get(f"{BASE}/executions/processes/{execution}/status")).json())["data"]
        await asyncio.sleep(0.01)

    assert status["status"] == "failed"
    elements = (await (await client.get(f"{BASE}/executions/processes/{execution}/elements")).json())["data"]
    (calc,) = [e for e in elements["items"] if e["key"] == "calc"]
    assert "deadline" in str(calc), calc
    assert slowest < EXPRESSION_DEADLINE_S + 1.5, slowest  # the deadline, and a loaded machine's slack
