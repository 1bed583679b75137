"""The REST contract end to end: shapes, rules, every error code, tenant isolation on every route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import BASE, Api, wait_for_status
from tests.support.polling import poll
from tests.support.processes import ORDER_FULFILMENT_FAST_YAML as ORDER_FULFILMENT_YAML
from tests.support.processes import WAIT_PROCESS


async def started(api: Api, variables: dict[str, Any] | None = None) -> int:
    process = await api.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    run = await api.ok(
        "POST",
        "/executions/processes",
        json={"processID": process["processID"], "variables": variables or {"amount": 21}},
        expect=201,
    )
    assert run["status"] == "running"
    execution_id: int = run["executionID"]
    await poll(
        lambda: api.ok("GET", f"/executions/processes/{execution_id}/elements"),
        lambda elements: any(e["key"] == "wait" for e in elements["items"]),
        within=5,
    )
    return execution_id


async def test_the_seed_shapes_of_pause_resume_cancel_and_status(api_a: Api) -> None:
    execution_id = await started(api_a)

    paused = await api_a.ok("POST", f"/executions/processes/{execution_id}/pause", json={"reason": "check"})
    assert set(paused) >= {"executionID", "status", "completedNodes", "totalNodes", "pausedAt"}
    assert (paused["executionID"], paused["status"], paused["completedNodes"], paused["totalNodes"]) == (
        execution_id,
        "paused",
        1,
        3,
    )
    assert paused["pausedAt"].endswith("Z")

    status = await api_a.ok("GET", f"/executions/processes/{execution_id}/status")
    assert status["status"] == "paused" and status["isActive"] is True
    assert status["progress"] == {"totalNodes": 3, "completedNodes": 1, "failedNodes": 0, "percentage": 33.33}
    assert set(status["timing"]) >= {"startedAt", "stoppedAt", "durationMs"} and status["timing"]["stoppedAt"] is None
    assert isinstance(status["processID"], int)
    thread = status["threads"][0]
    assert set(thread) >= {"threadExecutionID", "processThreadID", "completedNodes", "totalNodes"}
    assert (thread["completedNodes"], thread["totalNodes"]) == (1, 3)

    resumed = await api_a.ok("POST", f"/executions/processes/{execution_id}/resume")
    assert (resumed["executionID"], resumed["status"], resumed["pendingNodes"]) == (execution_id, "running", 1)
    assert resumed["resumedAt"].endswith("Z")

    cancelled = await api_a.ok("POST", f"/executions/processes/{execution_id}/cancel", json={})
    assert (cancelled["executionID"], cancelled["status"]) == (execution_id, "cancelled")
    assert cancelled["cancelledAt"].endswith("Z")
    final = await api_a.ok("GET", f"/executions/processes/{execution_id}/status")
    assert final["isActive"] is False and final["timing"]["stoppedAt"] is not None

    state = await api_a.ok("GET", f"/executions/processes/{execution_id}/state")
    assert (state["active"], state["stack"], state["memory"]) == (False, None, None)
    log = await api_a.ok("GET", f"/executions/processes/{execution_id}/log")
    transitions = [
        (e["event"], e["detail"].get("from"), e["detail"].get("to"))
        for e in log["items"]
        if e["event"] in ("started", "paused", "resumed", "cancelled")
    ]
    assert transitions == [
        ("started", "", "running"),
        ("paused", "running", "paused"),
        ("resumed", "paused", "running"),
        ("cancelled", "running", "cancelled"),
    ]
    pause_entry = next(e for e in log["items"] if e["event"] == "paused")
    assert pause_entry["detail"]["by"] == "tenant-a" and pause_entry["detail"]["reason"] == "check"
    assert pause_entry["detail"]["requestId"]


async def test_yaml_registration_signal_and_completion(api_a: Api) -> None:
    process = await api_a.ok(
        "POST", "/processes", data=ORDER_FULFILMENT_YAML, headers={"Content-Type": "application/yaml"}, expect=201
    )
    again = await api_a.ok(
        "POST", "/processes", data=ORDER_FULFILMENT_YAML, headers={"Content-Type": "application/yaml"}, expect=200
    )
    assert again == process and process["version"] == 1
    run = await api_a.ok(
        "POST",
        "/executions/processes",
        json={"processKey": "order-fulfilment", "variables": {"order_id": "ORD-12345", "order_total": 599.99}},
        expect=201,
    )
    execution_id = run["executionID"]

    accepted = await api_a.ok(
        "POST", f"/executions/processes/{execution_id}/signals/approval", json={"approved": True}, expect=202
    )
    assert accepted["signal"] == "approval"

    status = await wait_for_status(api_a, execution_id, "completed")
    assert status["progress"]["percentage"] == 100.0 and status["isActive"] is False
    state = await api_a.ok("GET", f"/executions/processes/{execution_id}/state")
    assert state["memory"]["variables"]["approval"] == {"approved": True}
    assert state["memory"]["node_outputs"]["fetch_order"] == {"status": "success", "data": {"id": "ORD-12345"}}
    elements = await api_a.ok("GET", f"/executions/processes/{execution_id}/elements")
    assert {e["key"]: e["status"] for e in elements["items"]} == {
        "fetch_order": "completed",
        "verify": "completed",
        "premium": "completed",
        "approve": "completed",
        "cool_off": "completed",
        "done": "completed",
    }
    log = await api_a.ok("GET", f"/executions/processes/{execution_id}/log")
    assert log["items"][-1]["event"] == "completed" and "signal-received" in [e["event"] for e in log["items"]]


async def test_idempotent_start_and_the_list(api_a: Api) -> None:
    process = await api_a.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    body = {"processID": process["processID"], "idempotencyKey": "k-1", "variables": {"amount": 1}}
    first = await api_a.ok("POST", "/executions/processes", json=body, expect=201)
    second = await api_a.ok("POST", "/executions/processes", json=body, expect=200)
    assert second["executionID"] == first["executionID"]
    other = await api_a.ok(
        "POST", "/executions/processes", json={"processKey": "approval", "variables": {"amount": 1}}, expect=201
    )

    listed = await api_a.ok("GET", "/executions/processes?limit=1")
    assert [e["executionID"] for e in listed["items"]] == [other["executionID"]]
    rest = await api_a.ok("GET", f"/executions/processes?limit=5&cursor={listed['nextCursor']}")
    assert [e["executionID"] for e in rest["items"]] == [first["executionID"]] and rest["nextCursor"] is None
    by_process = await api_a.ok("GET", f"/executions/processes?processID={process['processID']}&status=running")
    assert len(by_process["items"]) == 2


async def test_25_concurrent_idempotent_starts_answer_one_201_and_24_200s(api_a: Api) -> None:
    process = await api_a.ok("POST", "/processes", json=WAIT_PROCESS, expect=201)
    body = {"processID": process["processID"], "idempotencyKey": "burst", "variables": {"amount": 1}}

    answers = await asyncio.gather(*(api_a.call("POST", "/executions/processes", json=body) for _ in range(25)))

    assert sorted(status for status, _ in answers) == [200] * 24 + [201]
    assert len({answer["data"]["executionID"] for _, answer in answers}) == 1


async def test_statuses_table(api_a: Api) -> None:
    table = await api_a.ok("GET", "/statuses")
    rows = {row["name"]: (row["id"], row["isFinal"], row["isSuccess"]) for row in table["items"]}
    assert rows == {
        "running": (1, False, False),
        "paused": (2, False, False),
        "completed": (3, True, True),
        "failed": (4, True, False),
        "cancelled": (5, True, False),
    }


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        (
            "POST",
            "/processes",
            {"data": b"{not json", "headers": {"Content-Type": "application/json"}},
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/processes",
            {"data": b"key: [unclosed", "headers": {"Content-Type": "application/yaml"}},
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/processes",
            {"json": {"key": "x", "threads": [{"key": "m", "elements": [{"key": "a", "type": "teleport"}]}]}},
            422,
            "VALIDATION_ERROR",
        ),
        ("POST", "/executions/processes", {"json": {"processKey": "does-not-exist"}}, 404, "NOT_FOUND"),
        ("POST", "/executions/processes", {"json": {"processID": "one"}}, 422, "VALIDATION_ERROR"),
        ("GET", "/executions/processes/999999/status", {}, 404, "NOT_FOUND"),
        ("GET", "/executions/processes/abc/status", {}, 404, "NOT_FOUND"),
        ("GET", "/no/such/route", {}, 404, "NOT_FOUND"),
        ("GET", "/executions/processes?status=sleeping", {}, 422, "VALIDATION_ERROR"),
        (
            "POST",
            "/processes",
            {"data": b"x" * (65 * 1024), "headers": {"Content-Type": "application/json"}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
)
async def test_every_client_error_gets_its_code_and_no_traceback(
    api_a: Api, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    got, body = await api_a.call(method, path, **kwargs)
    assert (got, body["success"], body["error"]["code"]) == (status, False, code)
    assert "Traceback" not in str(body)


async def test_validation_lists_every_problem(api_a: Api) -> None:
    bad = {
        "key": "x",
        "threads": [
            {
                "key": "m",
                "elements": [
                    {"key": "a", "type": "set-variable", "set": {"v": "1 +"}, "next": "ghost"},
                    {"key": "b", "type": "end"},
                ],
            }
        ],
    }
    status, body = await api_a.call("POST", "/processes", json=bad)
    assert status == 422
    problems = " | ".join(body["error"]["details"])
    assert "bad CEL" in problems and "ghost" in problems and "unreachable" in problems


async def test_an_element_of_unknown_type_hides_no_other_problem(api_a: Api) -> None:
    # the definition, as YAML: an unknown type pointing nowhere, a task with an unknown handler pointing
    # nowhere, an if-condition with bad CEL
    bad = """
key: odd-one
threads:
  - key: m
    elements:
      - {key: odd, type: frobnicate, next: x}
      - {key: t, type: task, handler: charge-card, next: y}
      - {key: c, type: if-condition, condition: "1 +* 2", then: odd}
"""
    status, body = await api_a.call(
        "POST", "/processes", data=bad.encode(), headers={"Content-Type": "application/yaml"}
    )
    assert status == 422
    assert body["error"]["message"] == "process definition 'odd-one' is not valid: 7 problems"
    problems = body["error"]["details"]
    assert problems[:6] == [
        "threads.0.elements.0.type: 'frobnicate' is not one of 'task', 'if-condition', 'switch', 'set-variable', "
        "'delay', 'wait-signal', 'parallel', 'for-each', 'call-process', 'fail', 'end'",
        "threads.0 (m): element 'odd' points to missing element 'x'",
        "threads.0 (m): element 't' points to missing element 'y'",
        "threads.0 (m): element 't' is unreachable from 'odd'",
        "threads.0 (m): element 'c' is unreachable from 'odd'",
        "element 't': unknown handler 'charge-card' (known: echo, fail, http, sleep)",
    ]
    assert problems[6].startswith("element 'c': bad CEL '1 +* 2'")
    assert not (await api_a.ok("GET", "/processes"))["items"]


async def test_illegal_transition_is_409_with_the_current_status(api_a: Api) -> None:
    execution_id = await started(api_a)
    status, body = await api_a.call("POST", f"/executions/processes/{execution_id}/resume")
    assert (status, body["error"]["code"]) == (409, "INVALID_TRANSITION")
    assert body["error"]["details"]["status"] == "running"


async def test_concurrent_resumes_over_http_exactly_one_wins(api_a: Api) -> None:
    execution_id = await started(api_a)
    await api_a.ok("POST", f"/executions/processes/{execution_id}/pause")
    results = await asyncio.gather(
        *(api_a.call("POST", f"/executions/processes/{execution_id}/resume") for _ in range(8))
    )
    assert sorted(status for status, _ in results) == [200] + [409] * 7
    log = await api_a.ok("GET", f"/executions/processes/{execution_id}/log")
    assert [e["event"] for e in log["items"]].count("resumed") == 1


async def test_missing_or_unknown_token_is_401(client: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await client.get(BASE + "/processes", headers=headers)
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (401, "UNAUTHORIZED")
    assert (await client.get("/health")).status == 200
    assert (await client.get("/ready")).status == 200


async def test_another_tenants_execution_is_404_for_every_verb(api_a: Api, api_b: Api) -> None:
    execution_id = await started(api_a)
    process_id = (await api_a.ok("GET", "/processes"))["items"][0]["processID"]
    routes = [
        ("GET", f"/processes/{process_id}", {}),
        ("POST", "/executions/processes", {"json": {"processID": process_id}}),
        ("POST", f"/executions/processes/{execution_id}/pause", {}),
        ("POST", f"/executions/processes/{execution_id}/resume", {}),
        ("POST", f"/executions/processes/{execution_id}/cancel", {}),
        ("GET", f"/executions/processes/{execution_id}/status", {}),
        ("POST", f"/executions/processes/{execution_id}/signals/approve", {"json": 1}),
        ("GET", f"/executions/processes/{execution_id}/log", {}),
        ("GET", f"/executions/processes/{execution_id}/elements", {}),
        ("GET", f"/executions/processes/{execution_id}/state", {}),
    ]
    for method, path, kwargs in routes:
        status, body = await api_b.call(method, path, **kwargs)
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), (method, path)
    assert (await api_b.ok("GET", "/processes"))["items"] == []
    assert (await api_b.ok("GET", "/executions/processes"))["items"] == []
    still = await api_a.ok("GET", f"/executions/processes/{execution_id}/status")
    assert still["status"] == "running"
    log = await api_a.ok("GET", f"/executions/processes/{execution_id}/log")
    assert "refused" not in [e["event"] for e in log["items"]]
