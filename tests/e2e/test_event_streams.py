"""Server-sent events: an execution's log entries as they are written (resumable with Last-Event-ID, ending after
the final transition), the tenant's status changes, tenants kept apart, bad ids refused, and a client that goes
away freeing its stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from procengine.node.node import Node
from tests.support.api import BASE, Api
from tests.support.polling import until
from tests.support.processes import WAIT_PROCESS


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The events of an SSE response, as {id, event, data}; comments (heartbeats) skipped."""
    event: dict[str, Any] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            event[field] = json.loads(value) if field == "data" else value


async def _started(api: Api) -> int:
    _, registered = await api.call("POST", "/processes", json=WAIT_PROCESS)  # 201, or 200 the second time
    process = registered["data"]
    started = await api.ok(
        "POST",
        "/executions/processes",
        expect=201,
        json={"processID": process["processID"], "variables": {"amount": 2}},
    )
    return int(started["executionID"])


async def test_an_execution_s_log_streams_as_it_is_written_and_ends_after_its_final_transition(
    api_a: Api, client: TestClient[Any, Any]
) -> None:
    execution_id = await _started(api_a)
    url = f"{BASE}/executions/processes/{execution_id}/events"
    async with client.get(url, headers=api_a.headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        seen: list[dict[str, Any]] = []
        async for event in events(response):
            seen.append(event)
            if event["event"] == "element-started" and event["data"]["elementKey"] == "wait":
                await api_a.ok("POST", f"/executions/processes/{execution_id}/signals/approve", expect=202, json=1)
        # the stream ended by itself after `completed`
    names = [event["event"] for event in seen]
    assert names[0] == "started" and names[-1] == "completed"
    assert "signal-received" in names and ("element-completed", "wait") in [
        (e["event"], e["data"]["elementKey"]) for e in seen
    ]
    assert all(event["id"] == event["data"]["id"] for event in seen)

    # Last-Event-ID: a reconnecting client gets what came after the last event it had, and nothing before
    middle = seen[2]["id"]
    async with client.get(url, headers={**api_a.headers, "Last-Event-ID": middle}) as response:
        again = [event async for event in events(response)]
    assert [event["id"] for event in again] == [event["id"] for event in seen[3:]]


async def test_status_changes_of_the_tenant_stream_from_now(
    api_a: Api, api_b: Api, client: TestClient[Any, Any]
) -> None:
    before = await _started(api_a)  # not in the stream: it started before the stream opened
    async with client.get(f"{BASE}/executions/events", headers=api_a.headers) as response:
        assert response.status == 200
        stream = events(response)
        execution_id = await _started(api_a)
        await _started(api_b)  # another tenant's: never seen here
        await api_a.ok("POST", f"/executions/processes/{execution_id}/pause")
        await api_a.ok("POST", f"/executions/processes/{execution_id}/cancel")
        seen = []
        async with asyncio.timeout(10):
            async for event in stream:
                seen.append((event["data"]["executionID"], event["data"]["status"]))
                if event["data"]["status"] == "cancelled":
                    break
    assert seen == [(execution_id, "running"), (execution_id, "paused"), (execution_id, "cancelled")]
    assert before not in [execution for execution, _ in seen]


async def test_another_tenant_s_execution_is_404_and_a_bad_event_id_422(api_a: Api, api_b: Api) -> None:
    execution_id = await _started(api_a)
    status, body = await api_b.call("GET", f"/executions/processes/{execution_id}/events")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")
    status, body = await api_a.call(
        "GET", f"/executions/processes/{execution_id}/events", headers={"Last-Event-ID": "yesterday"}
    )
    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")


async def test_a_client_that_goes_away_frees_its_stream(api_a: Api, client: TestClient[Any, Any], engine: Node) -> None:
    # a stream's heartbeat is its XREAD's BLOCK, which runs on Redis's time: a short one, so that the test waits
    # for one heartbeat and not for the 4 s the settings give
    engine.feeds.block_ms = 200
    execution_id = await _started(api_a)
    url = f"{BASE}/executions/processes/{execution_id}/events"
    response = await client.get(url, headers=api_a.headers)
    await response.content.readline()  # the first event has come: the stream is open
    assert engine.feeds.open == 1
    response.close()  # gone, without a word

    # noticed at the next heartbeat at the latest
    await until(lambda: not engine.feeds.open, within=engine.feeds.block_ms / 1000 + 5, every=0.05)


async def test_streams_over_the_limit_are_503(api_a: Api, client: TestClient[Any, Any], engine: Node) -> None:
    engine.feeds.limit = 1
    execution_id = await _started(api_a)
    url = f"{BASE}/executions/processes/{execution_id}/events"
    async with client.get(url, headers=api_a.headers) as first:
        await first.content.readline()
        status, body = await api_a.call("GET", f"/executions/processes/{execution_id}/events")
        assert (status, body["error"]["code"]) == (503, "UNAVAILABLE")


async def test_a_start_that_names_no_process_is_422(api_a: Api) -> None:
    status, body = await api_a.call("POST", "/executions/processes", json={})
    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert any("give processID or processKey" in problem for problem in body["error"]["details"])
