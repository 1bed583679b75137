"""Retry of a failed execution goes on from what failed, inside a parallel or for-each too (issue 20, point 1):
the lanes that had ended keep their results, the failed lane's element runs again (attempt 1), the siblings its
failure stopped run again from where they stood. And a failed execution's timers are frozen until its retry.
Against a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from procengine.api.views import RetryRequest
from procengine.node.node import Node
from procengine.tasks import HandlerRegistry
from tests.support.clock import ShiftedClock
from tests.support.nodes import CALLER, EngineFactory, Gate, start, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

CALLS: dict[str, int] = {}
BROKEN = {"value": True}


async def _count(task_input: dict[str, Any]) -> dict[str, Any]:
    name = str(task_input.get("name"))
    CALLS[name] = CALLS.get(name, 0) + 1
    return {"ran": name}


async def _flaky(task_input: dict[str, Any]) -> dict[str, Any]:
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if BROKEN["value"]:
        raise ConnectionError("down")
    return {"ran": "flaky"}


@pytest.fixture(autouse=True)
def _handlers(handlers: HandlerRegistry) -> None:
    CALLS.clear()
    BROKEN["value"] = True
    handlers.register("count", _count)
    handlers.register("flaky", _flaky)


THREE = definition(
    {
        "key": "checks",
        "type": "parallel",
        "branches": [
            {"key": "done", "elements": [
                {"key": "quick", "type": "task", "handler": "count", "input": {"name": "'quick'"}, "output": "q"},
            ]},
            {"key": "bad", "elements": [
                {"key": "go", "type": "wait-signal", "signal": "go", "next": "pay"},
                {"key": "pay", "type": "task", "handler": "flaky", "output": "p"},
            ]},
            {"key": "midway", "elements": [
                {"key": "one", "type": "task", "handler": "count", "input": {"name": "'one'"}, "next": "slow"},
                {"key": "slow", "type": "task", "handler": "gate", "next": "two"},
                {"key": "two", "type": "task", "handler": "count", "input": {"name": "'two'"}, "output": "m"},
            ]},
        ],
        "output": "results",
        "next": "end",
    },
    {"key": "end", "type": "end"},
    key="three",
)  # fmt: skip


async def test_a_retried_parallel_goes_on_from_the_failed_branch(engine: Node, gate: Gate) -> None:
    execution_id = await start(engine, THREE)
    await asyncio.wait_for(gate.entered.wait(), 10)  # `midway` is half-way: `one` ran, `slow` is in flight
    await poll(lambda: asyncio.sleep(0, CALLS.get("quick")), lambda calls: calls == 1)  # `done` has ended
    await engine.signal(CALLER, execution_id, "go", None)  # `bad` fails now
    assert await wait_status(engine, execution_id, "failed") == "failed"
    assert CALLS == {"quick": 1, "one": 1, "flaky": 1}
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    assert [e["path"] for e in state.stack["execution_stack"]] == ["main"]  # its lanes are kept aside

    BROKEN["value"] = False
    gate.release.set()
    retried = await engine.retry(CALLER, execution_id, RetryRequest(reason="gateway back"))

    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert retried.retried == ["pay", "checks"]
    # the completed branch did not run again, nor did `one`; the failed one re-ran; `slow` re-ran (interrupted)
    assert CALLS == {"quick": 1, "one": 1, "flaky": 2, "two": 1}
    assert gate.calls == 2
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None
    assert state.memory["variables"]["results"] == {
        "done": {"q": {"ran": "quick"}},
        "bad": {"p": {"ran": "flaky"}},
        "midway": {"m": {"ran": "two"}},
    }
    [entry] = [e.detail for e in (await engine.log(CALLER, execution_id)).items if e.event == "retried"]
    assert entry["reset"] == [
        {"element": "pay", "thread": "main", "attempts": 1, "path": "main/checks[bad]"},
        {"element": "checks", "thread": "main", "attempts": 1, "lanesResumed": ["main/checks[midway]"]},
    ]
    started = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "element-started"]
    assert [e.detail.get("rerun") for e in started if e.elementKey == "slow"] == [None, True]  # said so
    status = await engine.status(CALLER, execution_id)
    assert (status.progress.failedNodes, status.progress.completedNodes) == (0, status.progress.totalNodes)


EACH = definition(
    {
        "key": "ship",
        "type": "for-each",
        "items": "items",
        "maxConcurrency": 2,
        "body": {"elements": [
            {"key": "send", "type": "task", "handler": "count", "input": {"name": "'send-' + string(item)"},
             "next": "check"},
            {"key": "check", "type": "switch", "cases": [{"when": "item == 2", "next": "pay"}], "default": "fine"},
            {"key": "pay", "type": "task", "handler": "flaky"},
            {"key": "fine", "type": "end"},
        ]},
        "output": "shipped",
        "next": "end",
    },
    {"key": "end", "type": "end"},
    key="each",
)  # fmt: skip


async def test_a_retried_for_each_runs_only_the_failed_iteration_and_the_rest(engine: Node) -> None:
    execution_id = await start(engine, EACH, {"items": [0, 1, 2, 3, 4]})
    assert await wait_status(engine, execution_id, "failed") == "failed"
    ran_before = dict(CALLS)
    assert ran_before["send-2"] == 1 and ran_before["flaky"] == 1

    BROKEN["value"] = False
    await engine.retry(CALLER, execution_id, RetryRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    for item in range(5):  # every item sent once, whether before the failure or after the retry
        assert CALLS[f"send-{item}"] == 1, (item, CALLS)
    assert CALLS["flaky"] == 2
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None and len(state.memory["variables"]["shipped"]) == 5


async def test_a_catch_on_the_fan_out_drops_what_was_kept_for_a_retry(engine: Node, gate: Gate) -> None:
    caught = definition(
        {**THREE["threads"][0]["elements"][0], "catch": [{"errors": ["*"], "next": "end"}]},
        {"key": "end", "type": "end"},
        key="caught",
    )
    execution_id = await start(engine, caught)
    await asyncio.wait_for(gate.entered.wait(), 10)
    await engine.signal(CALLER, execution_id, "go", None)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None
    assert state.memory.get("scopes", {}) == {} and state.memory.get("fanouts", {}) == {}


async def test_a_failed_executions_timers_are_frozen_until_its_retry(make_engine: EngineFactory) -> None:
    clock = ShiftedClock()
    engine = await make_engine(clock=clock)
    process = definition(
        key="timers",
        threads=[
            {"key": "main", "elements": [
                {"key": "pay", "type": "task", "handler": "flaky", "retry": {"maxAttempts": 1}},
            ]},
            {"key": "later", "elements": [
                {"key": "nap", "type": "delay", "durationMs": 2_000, "next": "after"},
                {"key": "after", "type": "task", "handler": "count", "input": {"name": "'after'"}},
            ]},
        ],
    )  # fmt: skip
    execution_id = await start(engine, process)
    assert await wait_status(engine, execution_id, "failed") == "failed"
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    nap = next(e for e in state.stack["execution_stack"] if e["element_key"] == "nap")
    assert "due_at_ms" not in nap and 1_000 < nap["remaining_ms"] <= 2_000  # frozen with the failure

    clock.advance(3_600_000)  # an hour failed: the delay does not count it
    BROKEN["value"] = False
    await engine.retry(CALLER, execution_id, RetryRequest())
    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None
    nap = next(e for e in state.stack["execution_stack"] if e["element_key"] == "nap")
    assert nap["due_at_ms"] - clock.now_ms() > 500  # thawed: what was left of it, from now (not due at once)
    assert "after" not in CALLS
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert CALLS["after"] == 1
