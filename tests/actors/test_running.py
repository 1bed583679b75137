"""Running executions: retries, timeouts, threads, signals, snapshots that cannot be resumed."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.errors import StateCorrupted
from procengine.node.node import Node
from procengine.store.codec import encode
from tests.support.nodes import CALLER, events, start, wait_element, wait_status
from tests.support.processes import definition


async def test_a_failing_task_is_retried_then_fails_the_execution(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {
                "key": "boom",
                "type": "task",
                "handler": "fail",
                "input": {"message": "'card declined'"},
                "retry": {"maxAttempts": 3, "backoffMs": 10, "backoffMultiplier": 2.0},
            },
        ),
    )

    assert await wait_status(engine, execution_id, "failed") == "failed"

    status = await engine.status(CALLER, execution_id)
    assert status.error == {
        "element": "boom",
        "error": "TaskFailed: card declined",
        "type": "TaskFailed",
        "attempts": 3,
    }
    assert status.progress.failedNodes == 1 and not status.isActive
    element = (await engine.elements(CALLER, execution_id)).items[0]
    assert (element.status, element.attempts, element.error, element.errorType) == (
        "failed",
        3,
        "TaskFailed: card declined",
        "TaskFailed",
    )
    names = [e for e, _ in await events(engine, execution_id)]
    assert names.count("element-retry") == 2 and names.count("element-failed") == 1 and names[-1] == "failed"


async def test_a_task_that_times_out_fails(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition({"key": "slow", "type": "task", "handler": "sleep", "input": {"ms": "5000"}, "timeoutMs": 50}),
    )
    await wait_status(engine, execution_id, "failed")
    assert (await engine.status(CALLER, execution_id)).error == {
        "element": "slow",
        "error": "timed out after 50 ms",
        "type": "Timeout",
        "attempts": 1,
    }


async def test_all_threads_must_end_and_a_failing_thread_stops_the_others(engine: Node) -> None:
    threads = [
        {"key": "left", "elements": [{"key": "a", "type": "set-variable", "set": {"x": "1"}}]},
        {"key": "right", "elements": [{"key": "b", "type": "wait-signal", "signal": "never"}]},
        {
            "key": "bad",
            "elements": [
                {"key": "c", "type": "delay", "durationMs": 100, "next": "d"},
                {"key": "d", "type": "if-condition", "condition": "missing > 1", "then": "e"},
                {"key": "e", "type": "end"},
            ],
        },
    ]
    execution_id = await start(engine, definition(threads=threads))

    await wait_status(engine, execution_id, "failed")

    status = await engine.status(CALLER, execution_id)
    assert {t.threadKey: t.status for t in status.threads} == {"left": "completed", "right": "running", "bad": "failed"}
    assert status.error is not None and status.error["element"] == "d"


async def test_two_threads_complete_together(engine: Node) -> None:
    threads = [
        {
            "key": "one",
            "elements": [{"key": "a", "type": "delay", "durationMs": 30, "next": "b"}, {"key": "b", "type": "end"}],
        },
        {
            "key": "two",
            "elements": [{"key": "c", "type": "task", "handler": "echo", "input": {"v": "7"}, "output": "seven"}],
        },
    ]
    execution_id = await start(engine, definition(threads=threads))
    await wait_status(engine, execution_id, "completed")
    status = await engine.status(CALLER, execution_id)
    assert [(t.threadKey, t.completedNodes, t.totalNodes) for t in status.threads] == [("one", 2, 2), ("two", 1, 1)]
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None and memory["variables"]["seven"] == {"v": 7}
    assert memory["node_outputs"]["c"] == {"status": "success", "data": {"v": 7}}


async def test_a_signal_sent_before_the_wait_is_kept_for_it(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {"key": "nap", "type": "delay", "durationMs": 100, "next": "approve"},
            {"key": "approve", "type": "wait-signal", "signal": "approval", "into": "approval"},
        ),
    )
    await engine.signal(CALLER, execution_id, "approval", {"by": "alice"})
    await wait_status(engine, execution_id, "completed")
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None and memory["variables"]["approval"] == {"by": "alice"} and memory["signals"] == {}


async def test_the_contract_example_takes_the_premium_branch(engine: Node) -> None:
    from tests.support.processes import ORDER_FULFILMENT

    execution_id = await start(engine, ORDER_FULFILMENT, {"order_id": "ORD-12345", "order_total": 599.99})
    await engine.signal(CALLER, execution_id, "approval", True)
    await wait_status(engine, execution_id, "completed")
    status = await engine.status(CALLER, execution_id)
    assert status.progress.completedNodes == 6 and status.progress.percentage == 100.0
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None and memory["variables"]["is_premium"] is True
    assert "standard" not in memory["node_outputs"]


async def paused_waiting(engine: Node) -> int:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    return execution_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stack", b"\xc1not msgpack"),
        ("stack", encode({"execution_stack": []})),
        ("stack", encode({"execution_stack": [{"element_key": "w"}]})),
        ("memory", b"\xc1"),
        ("memory", encode({"variables": "nope"})),
        ("stack", None),
        ("memory", None),
    ],
)
async def test_resume_refuses_a_corrupted_snapshot_and_changes_nothing(
    engine: Node, redis: Redis, field: str, value: bytes | None
) -> None:
    execution_id = await paused_waiting(engine)
    state_key = engine.keys.execution(execution_id).state
    if value is None:
        await redis.hdel(state_key, field)
    else:
        await redis.hset(state_key, field, value)
    before_state = await redis.hgetall(state_key)
    before_exec = await redis.hgetall(engine.keys.execution(execution_id).execution)

    with pytest.raises(StateCorrupted):
        await engine.resume(CALLER, execution_id, ControlRequest())

    assert await redis.hgetall(state_key) == before_state
    assert await redis.hgetall(engine.keys.execution(execution_id).execution) == before_exec
    assert (await engine.status(CALLER, execution_id)).status == "paused"
    last = (await engine.log(CALLER, execution_id)).items[-1]
    assert last.event == "refused" and "state corrupted" in last.detail["why"]
    cancelled = await engine.cancel(CALLER, execution_id, ControlRequest())
    assert cancelled.status == "cancelled"


async def test_idle_paused_executions_leave_memory_and_come_back(engine: Node) -> None:
    ids = [await paused_waiting(engine) for _ in range(3)]
    actors = [engine.registry.get(execution_id) for execution_id in ids]
    async with asyncio.timeout(5):
        await asyncio.gather(*(actor.stopped.wait() for actor in actors if actor is not None))
    assert len(engine.registry) == 0
    for execution_id in ids:
        resumed = await engine.resume(CALLER, execution_id, ControlRequest())
        assert resumed.pendingNodes == 1
    assert len(engine.registry) == 3


async def test_a_switch_routes_to_a_fail_element_and_the_execution_fails_with_its_message(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {
                "key": "route",
                "type": "switch",
                "cases": [{"when": "score < 500", "next": "declined"}],
                "default": "approved",
            },
            {"key": "declined", "type": "fail", "message": "'score too low: ' + string(score)"},
            {"key": "approved", "type": "end"},
        ),
        {"score": 420},
    )

    assert await wait_status(engine, execution_id, "failed") == "failed"

    status = await engine.status(CALLER, execution_id)
    assert status.error == {"element": "declined", "error": "score too low: 420", "type": "Fail", "attempts": 1}
    assert [(e, k) for e, k in await events(engine, execution_id) if k] == [
        ("element-completed", "route"),
        ("element-failed", "declined"),
    ]


async def test_a_caught_task_failure_takes_the_catch_path_and_the_execution_completes(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {
                "key": "charge",
                "type": "task",
                "handler": "fail",
                "input": {"message": "'card declined'"},
                "catch": [{"errors": ["TaskFailed"], "next": "notify", "into": "failure"}],
                "next": "done",
            },
            {"key": "notify", "type": "set-variable", "set": {"notified": "failure.type"}},
            {"key": "done", "type": "end"},
        ),
    )

    assert await wait_status(engine, execution_id, "completed") == "completed"

    state = await engine.state(CALLER, execution_id)
    assert state.memory["variables"]["notified"] == "TaskFailed"
    charge = next(e for e in (await engine.elements(CALLER, execution_id)).items if e.key == "charge")
    assert (charge.status, charge.errorType, charge.caught) == ("failed", "TaskFailed", "notify")
    log = (await engine.log(CALLER, execution_id)).items
    failed = next(entry for entry in log if entry.event == "element-failed")
    assert failed.detail["caught"] == "notify"


async def test_a_wait_with_no_signal_in_time_goes_on_at_on_timeout(engine: Node) -> None:
    execution_id = await start(
        engine,
        definition(
            {"key": "approval", "type": "wait-signal", "signal": "go", "timeoutMs": 200, "onTimeout": "escalate"},
            {"key": "escalate", "type": "set-variable", "set": {"escalated": "true"}},
        ),
    )

    assert await wait_status(engine, execution_id, "completed") == "completed"

    state = await engine.state(CALLER, execution_id)
    assert state.memory["variables"] == {"escalated": True}
    assert state.memory["node_outputs"]["approval"] == {"status": "success", "data": {"timedOut": True}}


async def test_a_handler_exception_that_is_not_retryable_fails_at_once(engine: Node) -> None:
    class Declined(Exception):
        retryable = False

    calls = []

    async def decline(task_input: dict[str, object]) -> None:
        calls.append(task_input)
        raise Declined("no")

    engine.ctx.handlers.register("decline", decline)
    execution_id = await start(
        engine,
        definition({"key": "pay", "type": "task", "handler": "decline", "retry": {"maxAttempts": 5, "backoffMs": 10}}),
    )

    assert await wait_status(engine, execution_id, "failed") == "failed"
    error = (await engine.status(CALLER, execution_id)).error
    assert error is not None and (error["type"], error["attempts"]) == ("Declined", 1)
    assert len(calls) == 1
