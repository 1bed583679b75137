"""Two nodes behind their own front doors, one Redis: any node answers any request, with the owner's answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.tasks import builtin_handlers
from tests.support.api import TOKENS, Api, wait_for_status
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS


@pytest.fixture
async def nodes(redis: Redis, settings: Settings) -> AsyncIterator[tuple[Api, Api]]:
    configured = settings.model_copy(update={"api_tokens": TOKENS})
    async with (
        Node(redis, configured, builtin_handlers()) as a,
        Node(redis, configured, builtin_handlers()) as b,
        TestClient(TestServer(create_app(a, configured))) as client_a,
        TestClient(TestServer(create_app(b, configured))) as client_b,
    ):
        await asyncio.gather(a.router.serving.wait(), b.router.serving.wait())
        yield Api(client_a, "tok-a"), Api(client_b, "tok-a")


async def _waiting_on_a(a: Api) -> int:
    process = await a.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    start = {"processID": process["processID"], "variables": {"amount": 21}}
    execution_id: int = (await a.ok("POST", "/executions/processes", json=start, expect=201))["executionID"]
    await poll(  # polled over HTTP, as a client would
        lambda: a.ok("GET", f"/executions/processes/{execution_id}/status"),
        lambda status: status["progress"]["completedNodes"] >= 1,
        within=5,
    )
    return execution_id


async def test_start_on_a_control_it_on_b(nodes: tuple[Api, Api]) -> None:
    a, b = nodes
    execution_id = await _waiting_on_a(a)
    base = f"/executions/processes/{execution_id}"

    paused = await b.ok("POST", base + "/pause", json={"reason": "via b"})
    assert set(paused) >= {"executionID", "status", "completedNodes", "totalNodes", "pausedAt"}
    assert paused["status"] == "paused"
    # the 409 is the owner's, body and all, whichever node was asked
    status_b, refused_b = await b.call("POST", base + "/pause")
    status_a, refused_a = await a.call("POST", base + "/pause")
    assert status_b == status_a == 409
    assert (
        refused_b["error"]
        == refused_a["error"]
        == {
            "code": "INVALID_TRANSITION",
            "message": "cannot pause an execution that is paused",
            "details": {"status": "paused"},
        }
    )
    resumed = await b.ok("POST", base + "/resume")
    assert (resumed["status"], resumed["pendingNodes"]) == ("running", 1)

    # a signal retried with its Idempotency-Key is delivered once
    for _ in range(2):
        answer = await b.ok(
            "POST", base + "/signals/approve", expect=202, json={"yes": 1}, headers={"Idempotency-Key": "k"}
        )
        assert answer == {"executionID": execution_id, "signal": "approve", "accepted": True}
    await wait_for_status(b, execution_id, "completed")
    log: list[dict[str, Any]] = (await b.ok("GET", base + "/log"))["items"]
    assert [e["event"] for e in log].count("signal-received") == 1
    assert [e["event"] for e in log].count("refused") == 2


async def test_cancel_and_status_on_b(nodes: tuple[Api, Api]) -> None:
    a, b = nodes
    execution_id = await _waiting_on_a(a)
    cancelled = await b.ok("POST", f"/executions/processes/{execution_id}/cancel", json={"reason": "b says"})
    assert cancelled["status"] == "cancelled"
    assert (await a.ok("GET", f"/executions/processes/{execution_id}/status"))["status"] == "cancelled"
