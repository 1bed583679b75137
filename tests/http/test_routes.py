"""Every route answers the success envelope with the engine's model, and passes the request on intact."""

from __future__ import annotations

from procengine.api.views import ControlRequest, StartRequest
from tests.support.api import BASE
from tests.support.fake_engine import FakeEngine
from tests.support.front_door import EXECUTIONS, Client, error_of, started
from tests.support.processes import ORDER_DEFINITION


async def test_register_is_201_then_200_for_an_identical_body(client: Client) -> None:
    first = await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)
    again = await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)

    assert first.status == 201
    assert await first.json() == {"success": True, "data": {"processID": 1, "key": "order-fulfilment", "version": 1}}
    assert again.status == 200
    assert (await again.json())["data"]["processID"] == 1


async def test_register_accepts_yaml_under_each_yaml_content_type(client: Client) -> None:
    content_types = ("application/yaml", "application/x-yaml", "text/yaml", "Application/YAML; charset=utf-8")
    for version, content_type in enumerate(content_types, start=1):
        body = f"""
key: order-fulfilment
name: Order fulfilment v{version}
threads:
  - key: main
    elements:
      - {{key: fetch_order, type: task, handler: echo, input: {{id: "order_id"}}, next: done}}
      - {{key: done, type: end}}
"""
        response = await client.post(f"{BASE}/processes", data=body, headers={"Content-Type": content_type})

        assert response.status == 201, await response.text()
        assert (await response.json())["data"] == {"processID": version, "key": "order-fulfilment", "version": version}


async def test_yaml_anchors_are_allowed_when_they_stay_small(client: Client, engine: FakeEngine) -> None:
    body = """
key: with-anchors
threads:
  - key: main
    elements:
      - {key: a, type: task, handler: echo, retry: &retry {maxAttempts: 3, backoffMs: 10}, next: b}
      - {key: b, type: task, handler: echo, retry: *retry}
"""
    response = await client.post(f"{BASE}/processes", data=body, headers={"Content-Type": "application/yaml"})

    assert response.status == 201
    document = engine.last_call().args[0]
    assert document["threads"][0]["elements"][1]["retry"]["maxAttempts"] == 3


async def test_list_and_read_processes(client: Client) -> None:
    await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)

    listed = await (await client.get(f"{BASE}/processes")).json()
    read = await (await client.get(f"{BASE}/processes/1")).json()

    assert [item["key"] for item in listed["data"]["items"]] == ["order-fulfilment"]
    assert read["success"] is True
    assert read["data"]["definition"]["threads"][0]["key"] == "main"
    assert read["data"]["tenant"] == "default"


async def test_start_is_201_and_200_when_the_idempotency_key_matches(client: Client, engine: FakeEngine) -> None:
    execution_id = await started(client, idempotencyKey="order-42", variables={"order_id": 42})

    again = await client.post(EXECUTIONS, json={"processID": 1, "idempotencyKey": "order-42"})

    assert again.status == 200
    assert (await again.json())["data"]["executionID"] == execution_id
    first_start = next(call for call in engine.calls if call.method == "start_execution")
    assert first_start.args[0] == StartRequest(
        processKey="order-fulfilment", variables={"order_id": 42}, idempotencyKey="order-42"
    )


async def test_list_executions_passes_the_filters_and_pages(client: Client, engine: FakeEngine) -> None:
    for _ in range(3):
        await started(client)

    first = await (await client.get(EXECUTIONS, params={"limit": "2", "status": "running"})).json()
    second = await (await client.get(EXECUTIONS, params={"limit": "2", "cursor": first["data"]["nextCursor"]})).json()

    assert [item["executionID"] for item in first["data"]["items"]] == [3, 2]
    assert [item["executionID"] for item in second["data"]["items"]] == [1]
    assert second["data"]["nextCursor"] is None
    assert engine.last_call().args == (None, None, 2, "2")


async def test_list_executions_defaults(client: Client, engine: FakeEngine) -> None:
    response = await client.get(EXECUTIONS)

    assert response.status == 200
    assert await response.json() == {"success": True, "data": {"items": [], "nextCursor": None}}
    assert engine.last_call().args == (None, None, 50, None)


async def test_list_executions_by_process(client: Client, engine: FakeEngine) -> None:
    await started(client)

    response = await client.get(EXECUTIONS, params={"processID": "1", "status": "paused"})

    assert response.status == 200
    assert engine.last_call().args == ("paused", 1, 50, None)


async def test_pause_resume_cancel_with_and_without_a_reason(client: Client, engine: FakeEngine) -> None:
    execution_id = await started(client)

    paused = await client.post(f"{EXECUTIONS}/{execution_id}/pause")
    resumed = await client.post(f"{EXECUTIONS}/{execution_id}/resume", json={"reason": "fixed the input"})
    cancelled = await client.post(f"{EXECUTIONS}/{execution_id}/cancel", data="null")

    assert paused.status == resumed.status == cancelled.status == 200
    assert (await paused.json())["data"] == {
        "executionID": execution_id,
        "status": "paused",
        "completedNodes": 1,
        "totalNodes": 3,
        "pausedAt": "2024-05-01T12:00:00.000Z",
        "inflightNodes": 0,
    }
    assert (await resumed.json())["data"]["status"] == "running"
    assert (await cancelled.json())["data"]["status"] == "cancelled"
    requests = [call.args[1] for call in engine.calls if call.method in ("pause", "resume", "cancel")]
    assert requests == [ControlRequest(), ControlRequest(reason="fixed the input"), ControlRequest()]


async def test_signal_is_202_and_the_body_is_the_payload(client: Client, engine: FakeEngine) -> None:
    execution_id = await started(client)

    for payload in ({"approved": True}, [1, 2], "yes", 3.5, None):
        response = await client.post(f"{EXECUTIONS}/{execution_id}/signals/approval", json=payload)
        assert response.status == 202
        assert (await response.json())["data"] == {"executionID": execution_id, "signal": "approval", "accepted": True}
        assert engine.last_call().args == (execution_id, "approval", payload, None)

    empty = await client.post(f"{EXECUTIONS}/{execution_id}/signals/approval")
    assert empty.status == 202
    assert engine.last_call().args == (execution_id, "approval", None, None)


async def test_status_log_elements_and_state(client: Client) -> None:
    execution_id = await started(client, variables={"order_id": 7})
    await client.post(f"{EXECUTIONS}/{execution_id}/pause", json={"reason": "look"})

    status = (await (await client.get(f"{EXECUTIONS}/{execution_id}/status")).json())["data"]
    log = (await (await client.get(f"{EXECUTIONS}/{execution_id}/log")).json())["data"]
    elements = (await (await client.get(f"{EXECUTIONS}/{execution_id}/elements")).json())["data"]
    state = (await (await client.get(f"{EXECUTIONS}/{execution_id}/state")).json())["data"]

    assert status["status"] == "paused"
    assert status["isActive"] is True
    assert set(status["progress"]) >= {"totalNodes", "completedNodes", "failedNodes", "percentage"}
    assert set(status["timing"]) >= {"startedAt", "stoppedAt", "durationMs"}
    assert [entry["event"] for entry in log["items"]] == ["paused"]
    assert log["items"][0]["detail"]["from"] == "running"
    assert elements["items"][0]["key"] == "fetch"
    assert state["memory"] == {"variables": {"order_id": 7}}


async def test_elements_are_paged_by_limit_and_cursor(client: Client, engine: FakeEngine) -> None:
    execution_id = await started(client)
    path = f"{EXECUTIONS}/{execution_id}/elements"

    whole = await client.get(path)
    page = await client.get(path, params={"limit": "30", "cursor": "WyIiLCAiYSIsICIiXQ"})
    assert (whole.status, page.status) == (200, 200)
    assert (await whole.json())["data"]["nextCursor"] is None
    assert engine.last_call().args == (execution_id, 30, "WyIiLCAiYSIsICIiXQ")

    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"cursor": "not a cursor!"}):
        refused = await client.get(path, params=params)
        assert refused.status == 422, params
        assert (await refused.json())["error"]["code"] == "VALIDATION_ERROR"


async def test_statuses_is_the_contract_table(client: Client) -> None:
    response = await client.get(f"{BASE}/statuses")

    assert await response.json() == {
        "success": True,
        "data": {
            "items": [
                {"id": 1, "name": "running", "isFinal": False, "isSuccess": False},
                {"id": 2, "name": "paused", "isFinal": False, "isSuccess": False},
                {"id": 3, "name": "completed", "isFinal": True, "isSuccess": True},
                {"id": 4, "name": "failed", "isFinal": True, "isSuccess": False},
                {"id": 5, "name": "cancelled", "isFinal": True, "isSuccess": False},
            ]
        },
    }


async def test_success_answers_are_json(client: Client) -> None:
    response = await client.get(f"{BASE}/statuses")

    assert response.content_type == "application/json"
    assert response.charset == "utf-8"


async def test_a_batch_start_answers_an_outcome_per_item_in_order(client: Client, engine: FakeEngine) -> None:
    await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)
    items = [
        {"processKey": "order-fulfilment", "variables": {"order_id": 1}, "idempotencyKey": "a"},
        {"processKey": "missing"},
        {"processKey": "order-fulfilment", "idempotencyKey": "a"},
    ]

    response = await client.post(f"{EXECUTIONS}/batch", json={"items": items})

    assert response.status == 200
    data = (await response.json())["data"]
    assert [item["outcome"] for item in data["items"]] == ["started", "failed", "existing"]
    assert data["items"][1]["error"]["code"] == "NOT_FOUND" and data["items"][1]["error"]["status"] == 404
    assert data["items"][2]["executionID"] == data["items"][0]["executionID"]
    assert (data["started"], data["existing"], data["failed"]) == (1, 1, 1)
    batch = next(call for call in engine.calls if call.method == "start_many").args[0]
    assert batch.items[0] == StartRequest(processKey="order-fulfilment", variables={"order_id": 1}, idempotencyKey="a")


async def test_a_batch_of_more_than_1000_is_422_and_starts_nothing(client: Client, engine: FakeEngine) -> None:
    await client.post(f"{BASE}/processes", json=ORDER_DEFINITION)

    response = await client.post(f"{EXECUTIONS}/batch", json={"items": [{"processKey": "order-fulfilment"}] * 1001})

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert error["details"] == ["items: List should have at most 1000 items after validation, not 1001"]
    assert not [call for call in engine.calls if call.method in ("start_many", "start_execution")]


async def test_a_malformed_item_refuses_the_whole_batch_naming_the_item(client: Client, engine: FakeEngine) -> None:
    response = await client.post(
        f"{EXECUTIONS}/batch", json={"items": [{"processKey": "order-fulfilment"}, {"processID": "1"}]}
    )

    error = await error_of(response, 422, "VALIDATION_ERROR")
    assert any(problem.startswith("items.1.processID") for problem in error["details"])
    assert not [call for call in engine.calls if call.method == "start_many"]
