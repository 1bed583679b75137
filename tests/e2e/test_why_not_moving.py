"""Issue 20, point 5 over HTTP: a signal no wait-signal of the execution's definition can take is 422 (it would
be kept for ever), a takeable one 202; the status says per lane why it does not move; tenants stay apart."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api
from tests.support.polling import poll
from tests.support.processes import WAIT_PROCESS, definition


async def started_waiting(api: Api, process: dict[str, Any], key: str) -> int:
    """Register and start `process` (amount 21), once its element `key` has started."""
    registered = await api.ok("POST", "/processes", json=process, expect=201)
    run = await api.ok(
        "POST",
        "/executions/processes",
        json={"processID": registered["processID"], "variables": {"amount": 21}},
        expect=201,
    )
    execution_id: int = run["executionID"]
    await poll(
        lambda: api.ok("GET", f"/executions/processes/{execution_id}/elements"),
        lambda elements: any(e["key"] == key for e in elements["items"]),
        within=5,
    )
    return execution_id


async def test_a_signal_the_definition_cannot_take_is_422_naming_what_it_waits_for(api_a: Api) -> None:
    execution_id = await started_waiting(api_a, WAIT_PROCESS, "wait")

    status, body = await api_a.call("POST", f"/executions/processes/{execution_id}/signals/aprove", json=1)

    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert "'aprove'" in body["error"]["message"] and "'approve'" in body["error"]["message"]
    assert body["error"]["details"] == [
        "signal: 'aprove' is not a signal this execution waits for (it waits for 'approve')"
    ]
    state = await api_a.ok("GET", f"/executions/processes/{execution_id}/state")
    assert state["memory"]["signals"] == {}  # not kept
    log = await api_a.ok("GET", f"/executions/processes/{execution_id}/log")
    assert "signal-received" not in [e["event"] for e in log["items"]]

    accepted = await api_a.ok("POST", f"/executions/processes/{execution_id}/signals/approve", json=1, expect=202)
    assert accepted["signal"] == "approve"


async def test_a_signal_waited_for_only_in_a_branch_or_later_is_taken_and_kept(api_a: Api) -> None:
    later = definition(
        {"key": "first", "type": "wait-signal", "signal": "start", "next": "fan"},
        {
            "key": "fan",
            "type": "parallel",
            "branches": [
                {"key": "a", "elements": [{"key": "in-a", "type": "wait-signal", "signal": "from-branch"}]},
                {"key": "b", "elements": [{"key": "in-b", "type": "delay", "durationMs": 1}]},
            ],
        },
        key="later",
    )
    execution_id = await started_waiting(api_a, later, "first")

    await api_a.ok("POST", f"/executions/processes/{execution_id}/signals/from-branch", json=1, expect=202)

    state = await api_a.ok("GET", f"/executions/processes/{execution_id}/state")
    assert state["memory"]["signals"] == {"from-branch": [1]}
    [blocked] = (await api_a.ok("GET", f"/executions/processes/{execution_id}/status"))["blockedOn"]
    assert (blocked["kind"], blocked["detail"]["signal"], blocked["detail"]["buffered"]) == ("signal", "start", 0)


async def test_a_definition_without_a_wait_takes_no_signal(api_a: Api) -> None:
    napping = definition({"key": "nap", "type": "delay", "durationMs": 600_000}, key="napping")
    execution_id = await started_waiting(api_a, napping, "nap")

    status, body = await api_a.call("POST", f"/executions/processes/{execution_id}/signals/wake", json=None)

    assert (status, body["error"]["code"]) == (422, "VALIDATION_ERROR")
    assert body["error"]["details"] == [
        "signal: 'wake' is not a signal this execution waits for (it waits for no signal)"
    ]
    [blocked] = (await api_a.ok("GET", f"/executions/processes/{execution_id}/status"))["blockedOn"]
    assert (blocked["lane"], blocked["elementKey"], blocked["kind"]) == ("main", "nap", "delay")


async def test_another_tenant_learns_nothing_from_a_signal_or_the_status(api_a: Api, api_b: Api) -> None:
    execution_id = await started_waiting(api_a, WAIT_PROCESS, "wait")

    for method, path in (
        ("POST", f"/executions/processes/{execution_id}/signals/aprove"),  # untakeable: still 404, not 422
        ("POST", f"/executions/processes/{execution_id}/signals/approve"),
        ("GET", f"/executions/processes/{execution_id}/status"),
    ):
        status, body = await api_b.call(method, path, **({"json": 1} if method == "POST" else {}))
        assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), (method, path)
        assert "approve" not in body["error"]["message"]
    [blocked] = (await api_a.ok("GET", f"/executions/processes/{execution_id}/status"))["blockedOn"]
    assert blocked["detail"] == {"signal": "approve", "buffered": 0, "timeoutAt": None}
