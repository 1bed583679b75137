"""What a review of issue 20's repairs found, each held by a test: a retry that failed again at once on a child its
failure had cancelled, a retried execution a reconcile could take out of the active set, a `fail` step held
again, a policy or a timer too large to store or to write as a date, and control messages JSON cannot say."""

from __future__ import annotations

from typing import Any

import msgpack
import pydantic
import pytest
from redis.asyncio import Redis

from procengine.api.views import ElementPolicyRequest, FailRequest, RetryRequest
from procengine.engine.definitions import ProcessDefinition
from procengine.errors import MalformedControl
from procengine.node.control import parse
from procengine.node.node import Node
from procengine.runtime.clock import iso
from procengine.tasks import HandlerRegistry
from tests.actors.test_hold import process as held_process
from tests.support.nodes import CALLER, Gate, start, wait_status
from tests.support.processes import definition

FIXED = {"boom": False}


async def _boom(task_input: dict[str, Any]) -> dict[str, Any]:
    if not FIXED["boom"]:
        raise RuntimeError("boom")
    return {}


async def _count(task_input: dict[str, Any]) -> dict[str, Any]:
    return {"counted": True}


async def test_a_retry_gives_the_other_threads_calls_new_children_for_those_the_failure_cancelled(
    engine: Node, gate: Gate, handlers: HandlerRegistry
) -> None:
    # given thread `main` waiting for a child while thread `other` fails for good: the failure cancels the child
    FIXED["boom"] = False
    handlers.register("boom", _boom)
    await engine.register_process(CALLER, definition({"key": "g", "type": "task", "handler": "gate"}, key="kyc"))
    two = definition(
        key="two",
        threads=[
            {"key": "main", "elements": [
                {"key": "call", "type": "call-process", "process": "kyc", "next": "done"},
                {"key": "done", "type": "end"}]},
            {"key": "other", "elements": [
                {"key": "slow", "type": "delay", "durationMs": 200, "next": "bad"},
                {"key": "bad", "type": "task", "handler": "boom"}]},
        ],
    )  # fmt: skip
    execution_id = await start(engine, two)
    assert await wait_status(engine, execution_id, "failed") == "failed"
    stack = (await engine.state(CALLER, execution_id)).stack["execution_stack"]
    [first_child] = [e["child_execution_id"] for e in stack if e["element_key"] == "call"]
    assert await wait_status(engine, first_child, "cancelled") == "cancelled"

    # when it is retried (`bad` fixed: it now succeeds)
    FIXED["boom"] = True
    gate.release.set()
    retried = await engine.retry(CALLER, execution_id, RetryRequest(reason="boom fixed"))

    # then `call` starts a new child instead of failing on the cancelled one, and the execution completes
    assert "call" in retried.retried
    assert await wait_status(engine, execution_id, "completed", "failed") == "completed"
    log = [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == "retried"]
    assert {"element": "call", "thread": "main", "attempts": 1, "childExecutionID": first_child,
            "child": "started again"} in log[0]["reset"]  # fmt: skip


async def test_a_reconcile_that_read_a_retried_execution_as_failed_puts_it_back_in_the_active_set(
    engine: Node, redis: Redis
) -> None:
    execution_id = await start(engine, definition({"key": "x", "type": "fail", "message": "'no'"}, key="x"))
    assert await wait_status(engine, execution_id, "failed") == "failed"
    await engine.store.activate(execution_id)
    await redis.hset(engine.keys.execution(execution_id).execution, "status", "running")  # as a retry's write
    many_fields = engine.store.many_fields
    stale = {"status": "failed", "owner": ""}

    async def read_before_the_retry(ids: list[int], names: list[str]) -> list[dict[str, str]]:
        engine.store.many_fields = many_fields  # type: ignore[method-assign]
        return [stale if i == execution_id else row for i, row in zip(ids, await many_fields(ids, names), strict=True)]

    engine.store.many_fields = read_before_the_retry  # type: ignore[method-assign]
    await engine.reconcile()
    assert await redis.sismember(engine.keys.active, str(execution_id))


async def test_a_fail_step_on_a_held_element_fails_it_whatever_its_on_exhausted(
    engine: Node, handlers: HandlerRegistry
) -> None:
    FIXED["boom"] = False
    handlers.register("count", _count)
    handlers.register("flaky", _boom)
    execution_id = await start(engine, held_process(onExhausted="pause"))
    assert await wait_status(engine, execution_id, "paused") == "paused"
    failed = await engine.fail_element(CALLER, execution_id, "charge", FailRequest(error="give up", type="Rejected"))
    assert failed.status == "failed"
    assert (await engine.status(CALLER, execution_id)).status == "failed"
    stack = (await engine.state(CALLER, execution_id)).stack["execution_stack"]
    assert [e.get("held") for e in stack] == [None]


@pytest.mark.parametrize(
    "body",
    [
        {"timeoutMs": 10**30},
        {"retry": {"backoffMs": 10**20}},
        {"retry": {"maxAttempts": 2**70}},
        {"timeoutMs": 3 * 10**14},
    ],
)
def test_a_policy_change_past_what_can_be_stored_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="less than or equal"):
        ElementPolicyRequest.model_validate(body)


@pytest.mark.parametrize(
    "element",
    [
        {"key": "t", "type": "task", "handler": "echo", "timeoutMs": 10**30},
        {"key": "t", "type": "task", "handler": "echo", "retry": {"backoffMs": 10**20}},
        {"key": "t", "type": "delay", "durationMs": 3 * 10**14},
        {"key": "t", "type": "wait-signal", "signal": "s", "timeoutMs": 10**19},
    ],
)
def test_a_definition_with_a_duration_past_a_hundred_years_is_refused(element: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="less than or equal"):
        ProcessDefinition.model_validate(definition(element))


def test_a_time_past_what_a_date_can_say_is_written_as_the_latest_it_can() -> None:
    assert iso(10**30) == iso(253_402_300_799_999) and iso(10**30).startswith("9999-12-31T23:59:59")
    assert iso(-(10**30)).startswith("1000-01-01")


@pytest.mark.parametrize(
    ("variables", "why"),
    [
        ({b"k": 1}, "an object key that is not a string"),
        ({"x": b"\xff\xfe"}, "a value of type bytes"),
        ({"x": msgpack.ExtType(5, b"zz")}, "a value of type ExtType"),
        ({"x": [1, {"y": float("nan")}]}, "the number nan"),
    ],
)
def test_a_control_message_patch_json_cannot_say_is_malformed(variables: dict[Any, Any], why: str) -> None:
    data = msgpack.packb({"executionID": 1, "command": "edit", "variables": variables}, use_bin_type=True)
    with pytest.raises(MalformedControl, match=why):
        parse(data)


def test_a_control_message_reason_is_bounded_as_a_rest_one() -> None:
    with pytest.raises(MalformedControl, match="at most 1000 characters"):
        parse(msgpack.packb({"executionID": 1, "command": "pause", "reason": "x" * 1001}))
    assert parse(msgpack.packb({"executionID": 1, "command": "pause", "reason": "x" * 1000})).reason == "x" * 1000
