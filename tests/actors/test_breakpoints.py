"""Live breakpoints (issue 22, point 4): an execution pauses before a breakpointed element in any lane that reaches
it (the log says `breakpoint`), resume goes on past it, a condition narrows it; `PUT …/breakpoints` answers exactly
which runs had begun, and that answer holds when it races the element's start (1,000 races)."""

from __future__ import annotations

import asyncio

import pytest

from procengine.api.views import BreakpointSpec, BreakpointsRequest, ControlRequest
from procengine.errors import ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

GATED = definition(
    {"key": "gate", "type": "wait-signal", "signal": "go", "next": "target"},
    {"key": "target", "type": "set-variable", "set": {"hit": "true"}, "next": "after"},
    {"key": "after", "type": "set-variable", "set": {"done": "true"}, "next": "hold"},
    {"key": "hold", "type": "wait-signal", "signal": "end", "next": "end"},
    {"key": "end", "type": "end"},
)
FAN = definition(
    {"key": "gate", "type": "wait-signal", "signal": "go", "next": "each"},
    {"key": "each", "type": "for-each", "items": "[1, 2, 3]", "as": "n", "output": "out", "result": "sq",
     "body": {"elements": [{"key": "square", "type": "set-variable", "set": {"sq": "n * n"}}]}, "next": "end"},
    {"key": "end", "type": "end"},
)  # fmt: skip


async def _events(engine: Node, execution_id: int) -> list[tuple[str, str | None]]:
    return [(e.event, e.elementKey) for e in (await engine.log(CALLER, execution_id)).items]


async def _put(engine: Node, execution_id: int, *wanted: str | BreakpointSpec) -> list[tuple[str, str]]:
    answer = await engine.set_breakpoints(CALLER, execution_id, BreakpointsRequest(pauseBefore=list(wanted)))
    return [(run.elementKey, run.lane) for run in answer.alreadyStarted]


async def test_pauses_before_the_element_and_resume_goes_past_it(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await start(engine, GATED)
    await wait_element(engine, execution_id, "gate")
    assert await _put(engine, execution_id, "target") == []
    await engine.signal(CALLER, execution_id, "go", None)

    assert await wait_status(engine, execution_id, "paused") == "paused"
    events = await _events(engine, execution_id)
    assert ("breakpoint", "target") in events and ("element-completed", "target") not in events
    status = await engine.status(CALLER, execution_id)
    assert status.blockedOn and "breakpoint before 'target'" in str(status.blockedOn)
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None and "hit" not in state.memory["variables"]

    await engine.resume(CALLER, execution_id, ControlRequest())
    await wait_element(engine, execution_id, "hold")
    events = await _events(engine, execution_id)
    assert events.count(("breakpoint", "target")) == 1 and ("element-completed", "target") in events


async def test_a_run_already_begun_is_named_and_does_not_stop(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await start(engine, GATED)
    await wait_element(engine, execution_id, "gate")
    assert await _put(engine, execution_id, "gate") == [("gate", "main")]  # waiting in it
    await engine.signal(CALLER, execution_id, "go", None)
    await wait_element(engine, execution_id, "hold")
    assert await _put(engine, execution_id, "target", "after") == [("target", "main"), ("after", "main")]
    assert (await engine.status(CALLER, execution_id)).status == "running"


async def test_any_lane_of_a_for_each_stops_the_execution_and_a_condition_narrows_it(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine()
    execution_id = await start(engine, FAN)
    await wait_element(engine, execution_id, "gate")
    assert await _put(engine, execution_id, BreakpointSpec(element="square", when="n == 2")) == []
    await engine.signal(CALLER, execution_id, "go", None)

    assert await wait_status(engine, execution_id, "paused") == "paused"
    [entry] = [e for e in (await engine.log(CALLER, execution_id)).items if e.event == "breakpoint"]
    assert (entry.elementKey, entry.detail["lane"]) == ("square", "main/each[1]")
    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None and state.memory["variables"]["out"] == [1, 4, 9]


async def test_refusals_list_every_problem(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await start(engine, GATED)
    await wait_element(engine, execution_id, "gate")
    with pytest.raises(ValidationFailed) as refused:
        await _put(engine, execution_id, "nope", BreakpointSpec(element="target", when="1 +"), "target")
    assert len(refused.value.details) == 2
    assert "'nope'" in refused.value.details[0] and "pauseBefore[1].when" in refused.value.details[1]


async def test_a_thousand_races_every_answer_true(make_engine: EngineFactory) -> None:
    """The PUT and the signal that lets the lane begin `target` are sent at once: whatever the order they land in,
    `target` is in alreadyStarted exactly when the execution did not pause before it."""
    engine = await make_engine(passivate_after_ms=60_000)
    summary, _ = await engine.register_process(CALLER, GATED)
    from procengine.api.views import StartRequest

    async def race(round_: int) -> tuple[bool, bool]:
        started, _ = await engine.start_execution(CALLER, StartRequest(processID=summary.processID))
        execution_id = started.executionID
        await wait_element(engine, execution_id, "gate")

        async def put_after(turns: int) -> list[tuple[str, str]]:
            for _ in range(turns):  # the PUT lands that many loop turns after the signal: every interleaving
                await asyncio.sleep(0)
            return await _put(engine, execution_id, "target")

        _, begun = await asyncio.gather(engine.signal(CALLER, execution_id, "go", None), put_after(round_ % 16))
        said_started = ("target", "main") in begun

        async def settled() -> tuple[str, list[tuple[str, str | None]]]:
            return (await engine.status(CALLER, execution_id)).status, await _events(engine, execution_id)

        status, events = await poll(
            settled,
            lambda found: found[0] == "paused" or ("element-started", "hold") in found[1],
            within=20,
        )
        paused_before = status == "paused" and ("breakpoint", "target") in events
        await engine.cancel(CALLER, execution_id, ControlRequest())
        return said_started != paused_before, said_started

    results: list[tuple[bool, bool]] = []
    for batch in range(125):  # 8 at a time: within the test node's connection pool
        results += await asyncio.gather(*(race(batch * 8 + i) for i in range(8)))
    assert len(results) == 1000 and all(true for true, _ in results)
    started = sum(1 for _, begun in results if begun)
    assert 10 < started < 990, started  # both orders happened: the races were races


async def test_breakpoints_from_the_start(make_engine: EngineFactory) -> None:
    from procengine.api.views import StartRequest

    engine = await make_engine()
    summary, _ = await engine.register_process(CALLER, GATED)
    started, _ = await engine.start_execution(CALLER, StartRequest(processID=summary.processID, pauseBefore=["target"]))
    await wait_element(engine, started.executionID, "gate")
    await engine.signal(CALLER, started.executionID, "go", None)
    assert await wait_status(engine, started.executionID, "paused") == "paused"
    assert ("breakpoint", "target") in await _events(engine, started.executionID)
    with pytest.raises(ValidationFailed):
        await engine.start_execution(CALLER, StartRequest(processID=summary.processID, pauseBefore=["nope"]))
    listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=10, cursor=None)
    assert [item.executionID for item in listed.items] == [started.executionID]  # the refused one never was


async def test_the_state_shows_the_breakpoints(make_engine: EngineFactory) -> None:
    from procengine.api.views import StartRequest

    engine = await make_engine()
    summary, _ = await engine.register_process(CALLER, GATED)
    started, _ = await engine.start_execution(CALLER, StartRequest(processID=summary.processID, pauseBefore=["target"]))
    assert (await engine.state(CALLER, started.executionID)).pauseBefore == ["target"]  # from the start
    await wait_element(engine, started.executionID, "gate")
    await _put(engine, started.executionID, BreakpointSpec(element="after", when="hit"))
    assert (await engine.state(CALLER, started.executionID)).pauseBefore == [{"element": "after", "when": "hit"}]
