"""Pause on failure instead of failing (issue 20, point 4): `onExhausted: pause` on an element, the server's
`--on-exhausted` and a tenant's `--on-exhausted-for`; the execution pauses with the element held as failed on its
stack, and resume retries it. Against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest, ExecutionStatusView, RetryRequest
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, Gate, crash, start, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

CALLS: dict[str, int] = {}
BROKEN = {"value": True}


async def _flaky(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if BROKEN["value"]:
        raise ConnectionError("payment gateway down")
    return {"paid": True}


async def _count(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["count"] = CALLS.get("count", 0) + 1
    return {"counted": True}


@pytest.fixture(autouse=True)
def _handlers(handlers: HandlerRegistry) -> None:
    CALLS.clear()
    BROKEN["value"] = True
    handlers.register("flaky", _flaky)
    handlers.register("count", _count)


def charge(**options: Any) -> dict[str, Any]:
    return {"key": "charge", "type": "task", "handler": "flaky", "retry": {"maxAttempts": 2}, **options}


def process(**options: Any) -> dict[str, Any]:
    return definition(
        {"key": "first", "type": "task", "handler": "count", "next": "charge"},
        {**charge(**options), "next": "done"},
        {"key": "done", "type": "end"},
        key="pay",
    )


async def blocked(engine: Node, execution_id: int) -> list[dict[str, Any]]:
    """`blockedOn` as the node answers it, checked equal to the one read from Redis."""
    answered = (await engine.status(CALLER, execution_id)).model_dump(mode="json")["blockedOn"]
    from_redis = await engine.queries.status(CALLER.tenant, execution_id)
    view = ExecutionStatusView.model_validate_json(from_redis.json(engine.clock.now_ms()))
    assert view.model_dump(mode="json")["blockedOn"] == answered
    return list(answered)


async def log_of(engine: Node, execution_id: int, event: str) -> list[dict[str, Any]]:
    return [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == event]


async def test_a_failure_held_pauses_the_execution_and_resume_retries_it(engine: Node, redis: Redis) -> None:
    execution_id = await start(engine, process(onExhausted="pause"))
    assert await wait_status(engine, execution_id, "paused") == "paused"
    assert CALLS == {"count": 1, "flaky": 2}  # its retries were used up first

    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None and state.memory is not None
    [entry] = state.stack["execution_stack"]
    assert entry["element_key"] == "charge" and entry["attempt"] == 2
    held = entry["held"]
    assert (held["error"], held["type"]) == ("ConnectionError: payment gateway down", "ConnectionError")
    assert isinstance(held["atMs"], int)
    output = state.memory["node_outputs"]["charge"]
    assert (output["status"], output["type"], output["held"]) == ("failed", "ConnectionError", True)

    status = await engine.status(CALLER, execution_id)
    assert status.progress.failedNodes == 0  # held, not failed: resume retries it
    assert status.model_dump(mode="json")["blockedOn"] == await blocked(engine, execution_id)
    [line] = await blocked(engine, execution_id)
    assert (line["lane"], line["elementKey"], line["kind"]) == ("main", "charge", "held-failed")
    assert line["detail"] == {
        "error": "ConnectionError: payment gateway down",
        "type": "ConnectionError",
        "attempts": 2,
    }
    assert line["since"] is not None and line["until"] is None
    fields = await redis.hgetall(engine.keys.execution(execution_id).execution)
    assert fields[b"pausedBy"] == b"engine"
    assert fields[b"pauseReason"] == b"element 'charge' failed (ConnectionError): ConnectionError: payment gateway down"
    [paused] = await log_of(engine, execution_id, "paused")
    assert (paused["from"], paused["to"], paused["by"]) == ("running", "paused", "engine")
    assert paused["held"] == [
        {
            "element": "charge",
            "thread": "main",
            "attempts": 2,
            "error": "ConnectionError: payment gateway down",
            "type": "ConnectionError",
        }
    ]
    failed = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "element-failed"]
    assert [e.detail.get("held") for e in failed] == [True]
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert records["charge"].status == "failed"

    BROKEN["value"] = False
    await engine.resume(CALLER, execution_id, ControlRequest(reason="gateway back"))
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"count": 1, "flaky": 3}  # `first` did not run again; `charge` once more
    records = {e.key: e for e in (await engine.elements(CALLER, execution_id)).items}
    assert (records["charge"].status, records["charge"].attempts) == ("completed", 1)  # attempts reset
    [resumed] = await log_of(engine, execution_id, "resumed")
    assert resumed["retried"] == [
        {
            "element": "charge",
            "thread": "main",
            "attempts": 2,
            "error": "ConnectionError: payment gateway down",
            "type": "ConnectionError",
        }
    ]
    assert resumed["reason"] == "gateway back"
    status = await engine.status(CALLER, execution_id)
    assert (status.progress.failedNodes, status.progress.completedNodes) == (0, 3)


async def test_resume_of_a_still_failing_element_holds_it_again(engine: Node) -> None:
    execution_id = await start(engine, process(onExhausted="pause"))
    assert await wait_status(engine, execution_id, "paused") == "paused"
    await engine.resume(CALLER, execution_id, ControlRequest())
    await poll(lambda: asyncio.sleep(0, CALLS.get("flaky")), lambda calls: calls == 4)
    assert await wait_status(engine, execution_id, "paused") == "paused"
    assert len(await log_of(engine, execution_id, "paused")) == 2


@pytest.mark.parametrize(
    ("server", "tenants", "option", "expected"),
    [
        ("pause", {}, None, "paused"),  # the server's default
        ("fail", {"default": "pause"}, None, "paused"),  # the tenant's own
        ("pause", {"default": "fail"}, None, "failed"),  # the tenant's own wins over the server's
        ("fail", {"other": "pause"}, None, "failed"),  # another tenant's does not apply
        ("pause", {}, "fail", "failed"),  # the element's own wins
        ("fail", {}, "pause", "paused"),
    ],
)
async def test_the_server_and_tenant_defaults(
    make_engine: EngineFactory, server: str, tenants: dict[str, str], option: str | None, expected: str
) -> None:
    engine = await make_engine(on_exhausted=server, on_exhausted_for=tenants)
    options = {} if option is None else {"onExhausted": option}
    execution_id = await start(engine, process(**options))
    assert await wait_status(engine, execution_id, "paused", "failed") == expected


async def test_a_catch_takes_the_failure_before_it_is_held(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {**charge(onExhausted="pause"), "catch": [{"errors": ["ConnectionError"], "next": "later"}]},
            {"key": "later", "type": "end"},
            key="caught",
        ),
    )
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert await log_of(engine, execution_id, "paused") == []


async def test_a_failed_element_of_a_fail_type_is_never_held(make_engine: EngineFactory) -> None:
    engine = await make_engine(on_exhausted="pause")  # only a task's or a call's failure is held
    execution_id = await start(engine, definition({"key": "no", "type": "fail", "message": "'stop'"}, key="f"))
    assert await wait_status(engine, execution_id, "failed") == "failed"


BRANCHES = definition(
    {
        "key": "checks",
        "type": "parallel",
        "branches": [
            {"key": "fast", "elements": [{"key": "quick", "type": "task", "handler": "count"}]},
            {"key": "slow", "elements": [
                {"key": "wait", "type": "task", "handler": "gate", "next": "after"},
                {"key": "after", "type": "task", "handler": "count"},
            ]},
            {"key": "bad", "elements": [{**charge(onExhausted="pause")}]},
        ],
        "next": "done",
    },
    {"key": "done", "type": "end"},
    key="branches",
)  # fmt: skip


async def test_a_hold_in_a_branch_pauses_its_siblings_and_keeps_their_work(engine: Node, gate: Gate) -> None:
    execution_id = await start(engine, BRANCHES)
    await asyncio.wait_for(gate.entered.wait(), 10)
    # the slow branch's task is in flight when `bad` holds: the pause lets it drain (within the grace)
    paused = asyncio.create_task(wait_status(engine, execution_id, "paused"))
    await poll(lambda: asyncio.sleep(0, CALLS.get("flaky")), lambda calls: calls == 2)
    gate.release.set()
    assert await paused == "paused"
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    lanes = {e["path"]: e for e in state.stack["execution_stack"]}
    assert set(lanes) == {"main", "main/checks[slow]", "main/checks[bad]"}  # paused, not stopped
    assert lanes["main/checks[slow]"]["element_key"] == "after"  # the task that drained is done
    assert "held" in lanes["main/checks[bad]"]
    kinds = {line["lane"]: line["kind"] for line in await blocked(engine, execution_id)}
    assert kinds == {"main/checks[slow]": "paused", "main/checks[bad]": "held-failed"}
    assert CALLS["count"] == 1  # `quick` ran; `after` waits for the resume

    BROKEN["value"] = False
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"count": 2, "flaky": 3}  # `quick` did not run again
    assert gate.calls == 1


GATE_THEN_FAIL = {"value": True}


async def _gated_then_failing(gate: Gate, task_input: dict[str, Any]) -> dict[str, Any]:
    await gate.run(task_input)
    if GATE_THEN_FAIL["value"]:
        raise RuntimeError("sibling broke")
    return {"ok": True}


FAILING_SIBLING = definition(
    {
        "key": "checks",
        "type": "parallel",
        "branches": [
            {"key": "fast", "elements": [{"key": "quick", "type": "task", "handler": "count"}]},
            {"key": "slow", "elements": [{"key": "wait", "type": "task", "handler": "gate_then_fail"}]},
            {"key": "bad", "elements": [{**charge(onExhausted="pause")}]},
        ],
        "next": "done",
    },
    {"key": "done", "type": "end"},
    key="held-and-failed",
)


async def test_a_held_lane_parked_by_a_siblings_failure_is_retried_with_the_execution(
    engine: Node, gate: Gate, handlers: HandlerRegistry
) -> None:
    # given a parallel whose `bad` lane is held while its `slow` sibling's task is in flight; that task fails for
    # good while the hold's pause drains it: the execution fails, with the held lane parked beside the failed one
    GATE_THEN_FAIL["value"] = True

    async def gated_then_failing(task_input: dict[str, Any]) -> dict[str, Any]:
        return await _gated_then_failing(gate, task_input)

    handlers.register("gate_then_fail", gated_then_failing)
    execution_id = await start(engine, FAILING_SIBLING)
    await asyncio.wait_for(gate.entered.wait(), 10)
    await poll(lambda: asyncio.sleep(0, CALLS.get("flaky")), lambda calls: calls == 2)
    gate.release.set()
    assert await wait_status(engine, execution_id, "failed") == "failed"
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    [fan_out] = state.stack["execution_stack"]
    parked = {entry["path"]: entry for entry in fan_out["branches"]["parked"]}
    assert set(parked) == {"main/checks[slow]", "main/checks[bad]"}  # `fast` ended: not kept
    assert "held" in parked["main/checks[bad]"]

    # when it is retried, the sibling's task and the held element both working now
    GATE_THEN_FAIL["value"] = False
    BROKEN["value"] = False
    await engine.retry(CALLER, execution_id, RetryRequest())

    # then both lanes go on (the held one reset to attempt 1, its hold gone), `quick` does not run again, and the
    # execution completes
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"count": 1, "flaky": 3}
    assert gate.calls == 2
    [retried] = await log_of(engine, execution_id, "retried")
    assert {lane for item in retried["reset"] for lane in item.get("lanesResumed", [])} >= {"main/checks[bad]"}, retried


async def test_variables_can_be_edited_while_held(engine: Node) -> None:
    execution_id = await start(engine, process(onExhausted="pause"), {"card": "old"})
    assert await wait_status(engine, execution_id, "paused") == "paused"
    edited = await engine.edit_variables(CALLER, execution_id, {"card": "new"}, "card replaced")
    assert edited.changed == ["card"]
    BROKEN["value"] = False
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["variables"]["card"] == "new"


async def test_a_held_execution_whose_node_dies_is_still_held_on_another(make_engine: EngineFactory) -> None:
    first = await make_engine()
    execution_id = await start(first, process(onExhausted="pause"))
    assert await wait_status(first, execution_id, "paused") == "paused"
    await crash(first)
    second = await make_engine()

    [line] = await blocked(second, execution_id)
    assert (line["kind"], line["elementKey"]) == ("held-failed", "charge")
    BROKEN["value"] = False

    async def resumed() -> bool:
        try:
            await second.resume(CALLER, execution_id, ControlRequest())
        except Exception:  # the dead node's heartbeat has not expired yet: forwarded to it, unanswered
            return False
        return True

    await poll(resumed, lambda done: done, within=15)
    assert await wait_status(second, execution_id, "completed") == "completed"
    assert CALLS["flaky"] == 3


async def test_a_held_failure_checkpointed_before_the_pause_is_held_again_when_adopted(
    make_engine: EngineFactory, redis: Redis, gate: Gate
) -> None:
    """The node dies between the checkpoint that holds the failure and the paused write: the adopter finds the
    held entry on a running execution's stack, does not run it again, and pauses for it."""
    first = await make_engine(pause_grace_ms=60_000)
    execution_id = await start(first, BRANCHES)
    await asyncio.wait_for(gate.entered.wait(), 10)
    # `bad` holds while `slow` is in flight: the pause waits for `slow` (a long grace), still running
    await poll(lambda: asyncio.sleep(0, CALLS.get("flaky")), lambda calls: calls == 2)
    state_key = first.keys.execution(execution_id).state

    async def held_in_redis() -> bool:
        return b"held" in (await redis.hget(state_key, "stack") or b"")

    await poll(held_in_redis, lambda found: found)
    assert (await first.status(CALLER, execution_id)).status == "running"
    await crash(first)
    gate.release.set()  # the adopter's run of `wait` goes through
    second = await make_engine()

    assert await wait_status(second, execution_id, "paused", within=15) == "paused"
    assert CALLS["flaky"] == 2  # the held element did not run again on adoption
    kinds = {line["lane"]: line["kind"] for line in await blocked(second, execution_id)}
    assert kinds["main/checks[bad]"] == "held-failed"
    BROKEN["value"] = False
    await second.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(second, execution_id, "completed") == "completed"


async def test_a_call_whose_child_failed_is_held_and_its_resume_starts_a_new_child(engine: Node) -> None:
    await start(engine, definition({"key": "pay", "type": "task", "handler": "flaky"}, key="child"))
    execution_id = await start(
        engine,
        definition({"key": "call", "type": "call-process", "process": "child", "onExhausted": "pause"}, key="parent"),
    )
    assert await wait_status(engine, execution_id, "paused") == "paused"
    [line] = await blocked(engine, execution_id)
    assert (line["kind"], line["detail"]["type"]) == ("held-failed", "ChildFailed")
    first_child = (await engine.status(CALLER, execution_id)).children
    BROKEN["value"] = False
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    children = (await engine.status(CALLER, execution_id)).children
    assert len(children) == len(first_child) + 1  # a new child, not the failed one again
