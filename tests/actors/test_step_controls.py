"""Step controls (issue 20, point 3): retry, skip, complete or fail one element of a paused or failed execution's
stack, against a real Redis; each refusal; forwarded to the owner; raced against the execution's own progress.
Over HTTP: tests/client/test_step_client.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest
from redis.asyncio import Redis

from procengine.api.service import Caller
from procengine.api.views import (
    CompleteRequest,
    ControlRequest,
    ElementPolicyRequest,
    ElementRetryRequest,
    FailRequest,
    MoveRequest,
    RetryPolicyChange,
    RetryRequest,
    RunNowRequest,
    SkipRequest,
)
from procengine.errors import InvalidTransition, NotFound, PayloadTooLarge, ValidationFailed
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, Gate, start, wait_element, wait_status
from tests.support.processes import definition

CALLS: dict[str, int] = {}


async def _needs_ok(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["needs_ok"] = CALLS.get("needs_ok", 0) + 1
    if task_input.get("ok") is not True:
        raise RuntimeError(f"not ok: {task_input.get('ok')!r}")
    return {"done": True}


FLAKY = definition(
    {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "output": "checked",
     "next": "after", "retry": {"maxAttempts": 2, "backoffMs": 1}},
    {"key": "after", "type": "set-variable", "set": {"after": "true"}},
)  # fmt: skip
"""`check` fails (twice) unless `ok`; `after` sets `after`."""

GATED = definition(
    {"key": "hold", "type": "task", "handler": "gate", "output": "held", "next": "after",
     "catch": [{"errors": ["Rejected"], "next": "rejected", "into": "why"}]},
    {"key": "after", "type": "set-variable", "set": {"after": "true"}},
    {"key": "rejected", "type": "set-variable", "set": {"rejected": "true"}},
    key="gated",
)  # fmt: skip
"""`hold` waits for the gate; a failure of type Rejected goes to `rejected`."""

PARALLEL = definition(
    {"key": "both", "type": "parallel", "next": "after", "branches": [
        {"key": "a", "elements": [{"key": "w", "type": "wait-signal", "signal": "go", "next": "a2"},
                                  {"key": "a2", "type": "set-variable", "set": {"a": "1"}}]},
        {"key": "b", "elements": [{"key": "wb", "type": "wait-signal", "signal": "go"}]},
    ]},
    {"key": "after", "type": "set-variable", "set": {"after": "true"}},
    key="par",
)  # fmt: skip

FOR_EACH = definition(
    {"key": "each", "type": "for-each", "items": "items", "next": "after",
     "body": {"elements": [{"key": "w", "type": "wait-signal", "signal": "go"}]}},
    {"key": "after", "type": "set-variable", "set": {"after": "true"}},
    key="each",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _handlers(handlers: HandlerRegistry) -> None:
    CALLS.clear()
    handlers.register("needs_ok", _needs_ok)


async def failed(engine: Node) -> int:
    execution_id = await start(engine, FLAKY, {"ok": False})
    assert await wait_status(engine, execution_id, "failed") == "failed"
    return execution_id


async def paused_at(engine: Node, process: dict[str, Any], element: str, variables: Any = None) -> int:
    execution_id = await start(engine, process, variables)
    await wait_element(engine, execution_id, element)
    await engine.pause(CALLER, execution_id, ControlRequest(reason="look"))
    assert await wait_status(engine, execution_id, "paused") == "paused"
    return execution_id


async def log_of(engine: Node, execution_id: int, event: str) -> list[dict[str, Any]]:
    return [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == event]


async def variables(engine: Node, execution_id: int) -> dict[str, Any]:
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None
    return dict(state.memory["variables"])


async def test_skip_of_a_failed_element_leaves_it_paused_after_it(engine: Node, redis: Redis) -> None:
    execution_id = await failed(engine)
    keys = engine.keys.execution(execution_id)
    assert await redis.pttl(keys.execution) > 0  # the failure started its retention

    skipped = await engine.skip_element(
        CALLER, execution_id, "check", SkipRequest(output={"done": "by hand"}, reason="checked by phone")
    )

    assert (skipped.status, skipped.action, skipped.lane) == ("paused", "skip", "main")
    assert [(e.elementKey, e.attempt) for e in skipped.stack] == [("after", 1)]
    assert await redis.pttl(keys.execution) == -1  # live again: its retention undone in the same write
    assert execution_id in {int(x) for x in await redis.smembers(engine.keys.active)}
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None
    assert state.memory["node_outputs"]["check"]["status"] == "skipped"
    assert state.memory["variables"]["checked"] == {"done": "by hand"}  # as if it had run
    [entry] = await log_of(engine, execution_id, "element-skipped")
    assert (entry["by"], entry["reason"], entry["requestId"]) == ("default", "checked by phone", "req-test")
    assert (entry["from"], entry["to"], entry["output"]) == ("failed", "paused", {"done": "by hand"})
    assert [e["element_key"] for e in entry["stack"]["before"]] == ["check"]
    assert [e["element_key"] for e in entry["stack"]["after"]] == ["after"]
    records = {e.key: e.status for e in (await engine.elements(CALLER, execution_id)).items}
    assert records["check"] == "skipped"

    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"needs_ok": 2}  # not run again
    status = await engine.status(CALLER, execution_id)
    assert status.progress.completedNodes == status.progress.totalNodes


async def test_element_retry_resets_attempts_under_a_new_order(engine: Node) -> None:
    execution_id = await failed(engine)
    before = (await engine.state(CALLER, execution_id)).stack
    assert before is not None
    [old] = before["execution_stack"]
    assert old["attempt"] == 2

    retried = await engine.retry_element(CALLER, execution_id, "check", ElementRetryRequest(reason="try again"))

    assert retried.status == "paused" and [(e.elementKey, e.attempt) for e in retried.stack] == [("check", 1)]
    stack = (await engine.state(CALLER, execution_id)).stack
    assert stack is not None
    [new] = stack["execution_stack"]
    assert new["execution_order"] > old["execution_order"] and "due_at_ms" not in new
    [entry] = await log_of(engine, execution_id, "element-retried")
    assert entry["stack"]["before"][0]["attempt"] == 2 and entry["stack"]["after"][0]["attempt"] == 1
    await engine.edit_variables(CALLER, execution_id, {"ok": True})
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS == {"needs_ok": 3}
    assert (await variables(engine, execution_id))["checked"] == {"done": True}


async def test_complete_stores_the_output_as_the_handler_would(engine: Node, gate: Gate) -> None:
    execution_id = await paused_at(engine, GATED, "hold")

    done = await engine.complete_element(CALLER, execution_id, "hold", CompleteRequest(output={"ok": 1}))

    assert done.status == "paused" and [e.elementKey for e in done.stack] == ["after"]
    assert (await variables(engine, execution_id))["held"] == {"ok": 1}  # its output mapping
    [entry] = await log_of(engine, execution_id, "element-completed")
    assert entry["by"] == "default" and entry["output"] == {"ok": 1}
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await variables(engine, execution_id))["after"] is True


async def test_complete_refuses_an_element_that_is_not_a_task(engine: Node) -> None:
    execution_id = await paused_at(engine, PARALLEL, "w")
    with pytest.raises(ValidationFailed) as refused:
        await engine.complete_element(CALLER, execution_id, "wb", CompleteRequest(output=1))
    assert "not a task" in str(refused.value.problems)


async def test_fail_is_caught_by_a_catch_for_its_type(engine: Node) -> None:
    execution_id = await paused_at(engine, GATED, "hold")

    failed_ = await engine.fail_element(
        CALLER, execution_id, "hold", FailRequest(error="customer said no", type="Rejected", reason="phone call")
    )

    assert (failed_.status, failed_.caught) == ("paused", "rejected")
    assert [e.elementKey for e in failed_.stack] == ["rejected"]
    why = (await variables(engine, execution_id))["why"]
    assert (why["error"], why["type"]) == ("customer said no", "Rejected")
    [entry] = await log_of(engine, execution_id, "element-failed")
    assert (entry["errorType"], entry["caught"], entry["reason"]) == ("Rejected", "rejected", "phone call")
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"


async def test_fail_no_catch_takes_ends_the_execution_failed(engine: Node, redis: Redis) -> None:
    execution_id = await paused_at(engine, GATED, "hold")

    ended = await engine.fail_element(CALLER, execution_id, "hold", FailRequest(error="no", type="Other"))

    assert ended.status == "failed"
    status = await engine.status(CALLER, execution_id)
    assert status.status == "failed"
    assert await redis.pttl(engine.keys.execution(execution_id).execution) > 0  # its retention started
    # and it can be repaired as any failed execution: retried from that element
    retried = await engine.retry_element(CALLER, execution_id, "hold", ElementRetryRequest())
    assert retried.status == "paused"


async def test_a_failed_fan_out_branch_fails_its_fan_out_at_once(engine: Node) -> None:
    execution_id = await paused_at(engine, PARALLEL, "w")
    ended = await engine.fail_element(CALLER, execution_id, "w", FailRequest(error="gone", type="Gone"))
    assert ended.status == "failed"
    assert (await engine.status(CALLER, execution_id)).status == "failed"


async def test_a_lane_is_named_where_the_element_stands_in_several(engine: Node) -> None:
    execution_id = await paused_at(engine, FOR_EACH, "w", {"items": [1, 2]})
    with pytest.raises(ValidationFailed) as ambiguous:
        await engine.skip_element(CALLER, execution_id, "w", SkipRequest())
    assert "main/each[0], main/each[1]" in str(ambiguous.value.problems)

    skipped = await engine.skip_element(CALLER, execution_id, "w", SkipRequest(lane="main/each[1]"))

    assert skipped.lane == "main/each[1]"
    assert [e.lane for e in skipped.stack] == ["main", "main/each[0]"]
    with pytest.raises(NotFound):
        await engine.skip_element(CALLER, execution_id, "w", SkipRequest(lane="main/each[1]"))
    with pytest.raises(InvalidTransition) as fan_out:  # its iterations are on the stack
        await engine.skip_element(CALLER, execution_id, "each", SkipRequest())
    assert fan_out.value.current_status == "paused"
    await engine.skip_element(CALLER, execution_id, "w", SkipRequest())  # one lane left: no need to name it
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"


async def test_refusals(engine: Node, gate: Gate) -> None:
    running = await start(engine, GATED)
    await wait_element(engine, running, "hold")
    with pytest.raises(InvalidTransition) as not_paused:
        await engine.skip_element(CALLER, running, "hold", SkipRequest())
    assert not_paused.value.current_status == "running" and "pause it first" in not_paused.value.message
    [refused] = await log_of(engine, running, "refused")
    assert refused["command"] == "step" and "skip" in refused["why"]
    await engine.pause(CALLER, running, ControlRequest())
    await wait_status(engine, running, "paused")
    with pytest.raises(NotFound, match="no element 'nope'"):
        await engine.retry_element(CALLER, running, "nope", ElementRetryRequest())
    with pytest.raises(NotFound, match="not on the stack"):
        await engine.retry_element(CALLER, running, "after", ElementRetryRequest())
    with pytest.raises(NotFound):  # another tenant's: not found, and nothing learned
        await engine.skip_element(Caller("other", "other", "r"), running, "hold", SkipRequest())
    with pytest.raises(PayloadTooLarge):
        await engine.complete_element(CALLER, running, "hold", CompleteRequest(output="x" * 3_000_000))
    await engine.skip_element(CALLER, running, "hold", SkipRequest())
    await engine.resume(CALLER, running, ControlRequest())
    assert await wait_status(engine, running, "completed") == "completed"
    with pytest.raises(InvalidTransition) as final:
        await engine.retry_element(CALLER, running, "hold", ElementRetryRequest())
    assert final.value.current_status == "completed"


async def test_a_step_reaches_the_owner_on_another_node(make_engine: EngineFactory) -> None:
    first, second = await make_engine(), await make_engine()
    execution_id = await paused_at(first, GATED, "hold")
    await first.edit_variables(CALLER, execution_id, {"x": 1})  # its actor lives on the first node

    skipped = await second.skip_element(CALLER, execution_id, "hold", SkipRequest(reason="from node 2"))

    assert skipped.status == "paused"
    assert first.registry.get(execution_id) is not None and second.registry.get(execution_id) is None
    [entry] = await log_of(first, execution_id, "element-skipped")
    assert entry["reason"] == "from node 2"


async def test_a_skip_races_the_executions_own_progress(engine: Node, gate: Gate) -> None:
    """A pause and a skip sent at once while the task runs: the actor takes them one at a time. Either the skip
    comes first (refused: running) or it applies to the paused execution; `hold` never completes twice."""
    for _ in range(3):
        execution_id = await start(engine, GATED)
        await wait_element(engine, execution_id, "hold")
        gate.release.set()  # the task may finish meanwhile: its own progress
        paused, skipped = await asyncio.gather(
            engine.pause(CALLER, execution_id, ControlRequest()),
            engine.skip_element(CALLER, execution_id, "hold", SkipRequest()),
            return_exceptions=True,
        )
        gate.release.clear()
        if isinstance(skipped, BaseException):
            assert isinstance(skipped, InvalidTransition | NotFound), skipped
        if not isinstance(paused, BaseException):
            await engine.resume(CALLER, execution_id, ControlRequest())
        assert await wait_status(engine, execution_id, "completed") == "completed"
        log = [(e.event, e.elementKey) for e in (await engine.log(CALLER, execution_id)).items]
        ends = [e for e in log if e[1] == "hold" and e[0] in ("element-completed", "element-skipped")]
        assert len(ends) == 1, log


async def _fails_once(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["fails_once"] = CALLS.get("fails_once", 0) + 1
    if CALLS["fails_once"] == 1:
        raise RuntimeError("first time")
    return {"ok": True}


SLOW = definition(
    {"key": "call", "type": "task", "handler": "fails_once", "next": "nap",
     "retry": {"maxAttempts": 2, "backoffMs": 3_600_000}},
    {"key": "nap", "type": "delay", "durationMs": 3_600_000, "next": "end"},
    {"key": "end", "type": "end"},
    key="slow",
)  # fmt: skip
"""An hour's backoff after the first attempt, then an hour's delay."""


async def test_run_now_ends_a_backoff_and_a_delay(engine: Node, handlers: HandlerRegistry, gate: Gate) -> None:
    handlers.register("fails_once", _fails_once)
    execution_id = await start(engine, SLOW)
    await wait_element(engine, execution_id, "call", "retrying")
    with pytest.raises(NotFound):
        await engine.run_now(CALLER, execution_id, "nap", RunNowRequest())  # not on the stack yet

    ran = await engine.run_now(CALLER, execution_id, "call", RunNowRequest(reason="the API is back"))

    assert (ran.action, ran.status) == ("run-now", "running")
    await wait_element(engine, execution_id, "call", "completed")
    assert CALLS["fails_once"] == 2
    await wait_element(engine, execution_id, "nap", "running")
    await engine.run_now(CALLER, execution_id, "nap", RunNowRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    [first, second] = await log_of(engine, execution_id, "element-run-now")
    assert first["reason"] == "the API is back" and first["by"] == "default" and "dueAt" in first
    assert first["stack"]["before"][0]["due_at_ms"] > first["stack"]["after"][0]["due_at_ms"]
    assert "reason" not in second


async def test_run_now_refusals(engine: Node, gate: Gate) -> None:
    execution_id = await start(engine, GATED)
    await wait_element(engine, execution_id, "hold")
    with pytest.raises(InvalidTransition, match="not waiting on a timer") as under_way:
        await engine.run_now(CALLER, execution_id, "hold", RunNowRequest())
    assert under_way.value.current_status == "running"
    await engine.pause(CALLER, execution_id, ControlRequest())
    await wait_status(engine, execution_id, "paused")
    with pytest.raises(InvalidTransition) as paused:
        await engine.run_now(CALLER, execution_id, "hold", RunNowRequest())
    assert paused.value.current_status == "paused"
    with pytest.raises(NotFound):
        await engine.run_now(Caller("other", "other", "r"), execution_id, "hold", RunNowRequest())


async def test_a_policy_change_applies_to_this_run_of_the_task(engine: Node) -> None:
    """`check` fails unless ok, with 2 attempts: raised to 3 while running (between its failures, in its backoff)
    and then read by the interpreter; a paused execution's change is written expecting paused."""
    process = definition(
        {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"},
         "retry": {"maxAttempts": 2, "backoffMs": 3_600_000}},
        key="policy",
    )  # fmt: skip
    execution_id = await start(engine, process, {"ok": False})
    await wait_element(engine, execution_id, "check", "retrying")
    changed = await engine.change_policy(
        CALLER,
        execution_id,
        "check",
        ElementPolicyRequest(retry=RetryPolicyChange(maxAttempts=3, backoffMs=1), timeoutMs=5000, reason="flaky API"),
    )
    assert changed.status == "running" and changed.policy is not None
    assert changed.policy["retry"]["maxAttempts"] == 3 and changed.policy["timeoutMs"] == 5000
    await engine.run_now(CALLER, execution_id, "check", RunNowRequest())  # the hour's backoff set before
    assert await wait_status(engine, execution_id, "failed") == "failed"
    assert CALLS["needs_ok"] == 3  # three attempts, not the definition's two
    [entry] = await log_of(engine, execution_id, "element-policy-changed")
    assert entry["reason"] == "flaky API" and entry["policy"]["before"] is None
    assert entry["stack"]["after"][0]["policy"]["timeoutMs"] == 5000

    await engine.retry_element(CALLER, execution_id, "check", ElementRetryRequest())  # now paused
    paused = await engine.change_policy(CALLER, execution_id, "check", ElementPolicyRequest(timeoutMs=10))
    assert paused.status == "paused" and paused.policy is not None
    assert paused.policy["retry"]["maxAttempts"] == 3 and paused.policy["timeoutMs"] == 10  # merged
    # a retry field given changes that field only: the others stay as they are in force
    again = await engine.change_policy(
        CALLER, execution_id, "check", ElementPolicyRequest(retry=RetryPolicyChange(maxAttempts=4))
    )
    assert again.policy is not None
    kept = {"backoffMs": 1, "backoffMultiplier": 2.0, "maxBackoffMs": 3_600_000}
    assert again.policy["retry"] == {"maxAttempts": 4, **kept}
    with pytest.raises(pydantic.ValidationError, match="give retry or timeoutMs"):
        ElementPolicyRequest()  # nothing to change
    with pytest.raises(ValidationFailed) as not_a_task:
        await engine.change_policy(
            CALLER, await paused_at(engine, PARALLEL, "w"), "w", ElementPolicyRequest(timeoutMs=1)
        )
    assert "not a task" in str(not_a_task.value.problems)
    await engine.cancel(CALLER, execution_id, ControlRequest())
    with pytest.raises(InvalidTransition) as cancelled:
        await engine.change_policy(CALLER, execution_id, "check", ElementPolicyRequest(timeoutMs=10))
    assert cancelled.value.current_status == "cancelled" and "change the policy of" in cancelled.value.message


LOOP = definition(
    {"key": "first", "type": "set-variable", "set": {"n": "n + 1"}, "next": "check"},
    {"key": "check", "type": "task", "handler": "needs_ok", "input": {"ok": "ok"}, "next": "after"},
    {"key": "after", "type": "set-variable", "set": {"after": "true"}},
    key="loop",
)  # fmt: skip


async def test_move_puts_a_lane_before_another_element_of_its_thread(engine: Node) -> None:
    execution_id = await start(engine, LOOP, {"ok": False, "n": 0})
    assert await wait_status(engine, execution_id, "failed") == "failed"

    moved = await engine.move(CALLER, execution_id, MoveRequest(lane="main", before="first", reason="again"))

    assert (moved.action, moved.elementKey, moved.status) == ("move", "first", "paused")
    assert [(e.elementKey, e.attempt) for e in moved.stack] == [("first", 1)]
    [entry] = await log_of(engine, execution_id, "lane-moved")
    assert entry["movedFrom"] == "check" and entry["reason"] == "again" and entry["from"] == "failed"
    await engine.edit_variables(CALLER, execution_id, {"ok": True})
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert (await variables(engine, execution_id))["n"] == 2  # `first` ran again


async def test_move_refusals(engine: Node) -> None:
    execution_id = await paused_at(engine, PARALLEL, "w")
    with pytest.raises(ValidationFailed, match="not an element of its branch"):  # out of its branch
        await engine.move(CALLER, execution_id, MoveRequest(lane="main/both[a]", before="after"))
    with pytest.raises(ValidationFailed):  # into a branch, from the thread
        await engine.move(CALLER, execution_id, MoveRequest(lane="main", before="w"))
    with pytest.raises(ValidationFailed, match="no pending element"):
        await engine.move(CALLER, execution_id, MoveRequest(lane="main/both[c]", before="w"))
    with pytest.raises(InvalidTransition) as fan_out:  # its branches are on the stack
        await engine.move(CALLER, execution_id, MoveRequest(lane="main", before="after"))
    assert fan_out.value.current_status == "paused"
    moved = await engine.move(CALLER, execution_id, MoveRequest(lane="main/both[a]", before="a2"))  # within it
    assert ("a2", "main/both[a]") in [(e.elementKey, e.lane) for e in moved.stack]
    await engine.resume(CALLER, execution_id, ControlRequest())
    with pytest.raises(InvalidTransition) as running:
        await engine.move(CALLER, execution_id, MoveRequest(lane="main/both[b]", before="wb"))
    assert running.value.current_status == "running"


async def test_a_skip_races_a_retry_on_two_nodes(make_engine: EngineFactory) -> None:
    """A failed execution skipped on one node and retried on another at once: the owner's actor takes them one at a
    time, so exactly one applies and the other is refused naming the status the first left."""
    first, second = await make_engine(), await make_engine()
    for _ in range(3):
        execution_id = await failed(first)
        skipped, retried = await asyncio.gather(
            first.skip_element(CALLER, execution_id, "check", SkipRequest()),
            second.retry(CALLER, execution_id, RetryRequest()),
            return_exceptions=True,
        )
        events = [e.event for e in (await first.log(CALLER, execution_id)).items]
        if isinstance(retried, InvalidTransition):  # the skip came first: paused
            assert retried.current_status == "paused" and not isinstance(skipped, BaseException)
            assert "retried" not in events and events.count("element-skipped") == 1
            await first.cancel(CALLER, execution_id, ControlRequest())
        else:
            assert not isinstance(retried, BaseException), retried
            assert isinstance(skipped, InvalidTransition) and skipped.current_status in ("running", "failed")
            assert "element-skipped" not in events
            assert await wait_status(first, execution_id, "failed") == "failed"
