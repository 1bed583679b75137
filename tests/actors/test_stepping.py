"""Step mode (issue 22, point 5): a paused execution runs exactly the next element of each lane (or of one) and
pauses again, answering with what ran; a step that ends the execution ends it; refused unless paused."""

from __future__ import annotations

import pytest

from procengine.api.views import ControlRequest, StepRequest
from procengine.errors import InvalidTransition, ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.processes import definition

CHAIN = definition(
    {"key": "gate", "type": "wait-signal", "signal": "go", "next": "one"},
    {"key": "one", "type": "set-variable", "set": {"n": "1"}, "next": "two"},
    {"key": "two", "type": "set-variable", "set": {"n": "n + 1"}, "next": "three"},
    {"key": "three", "type": "set-variable", "set": {"n": "n + 1"}, "next": "end"},
    {"key": "end", "type": "end"},
)
TWO_THREADS = {
    "key": "two-threads",
    "threads": [
        {"key": "a", "elements": [
            {"key": "a1", "type": "set-variable", "set": {"x": "1"}, "next": "a2"},
            {"key": "a2", "type": "set-variable", "set": {"x": "2"}, "next": "a3"},
            {"key": "a3", "type": "end"},
        ]},
        {"key": "b", "elements": [
            {"key": "b1", "type": "set-variable", "set": {"y": "1"}, "next": "b2"},
            {"key": "b2", "type": "set-variable", "set": {"y": "2"}, "next": "b3"},
            {"key": "b3", "type": "end"},
        ]},
    ],
}  # fmt: skip


async def _n(engine: Node, execution_id: int, name: str = "n") -> object:
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None
    return memory["variables"].get(name)


async def _paused_at_one(engine: Node) -> int:
    execution_id = await start(engine, CHAIN)
    await wait_element(engine, execution_id, "gate")
    await engine.pause(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", None)  # kept: the gate takes it at the first step
    return execution_id


async def test_each_step_runs_one_element_and_pauses_again(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await _paused_at_one(engine)

    first = await engine.step(CALLER, execution_id, StepRequest(reason="look"))
    assert first.status == "paused"
    assert [(r.elementKey, r.lane, r.outcome) for r in first.ran] == [("gate", "main", "completed")]
    assert await _n(engine, execution_id) is None
    second = await engine.step(CALLER, execution_id, StepRequest())
    assert [(r.elementKey, r.outcome) for r in second.ran] == [("one", "completed")]
    assert await _n(engine, execution_id) == 1
    third = await engine.step(CALLER, execution_id, StepRequest())
    assert [r.elementKey for r in third.ran] == ["two"] and await _n(engine, execution_id) == 2
    log = [(e.event, e.elementKey) for e in (await engine.log(CALLER, execution_id)).items]
    assert log.count(("stepped", None)) == 3 and ("element-completed", "three") not in log

    await engine.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(engine, execution_id, "completed") == "completed"
    assert await _n(engine, execution_id) == 3


async def test_one_lane_or_every_lane(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    summary, _ = await engine.register_process(CALLER, TWO_THREADS)
    from procengine.api.views import StartRequest

    started, _ = await engine.start_execution(CALLER, StartRequest(processID=summary.processID))
    execution_id = started.executionID
    await engine.pause(CALLER, execution_id, ControlRequest())  # may land after a few elements: read where
    stack = (await engine.state(CALLER, execution_id)).stack
    assert stack is not None
    pending = {e["path"]: e["element_key"] for e in stack["execution_stack"]}
    if len(pending) < 2:
        pytest.skip("the threads ended before the pause landed")

    only_a = await engine.step(CALLER, execution_id, StepRequest(lane="a"))
    assert [(r.lane, r.elementKey) for r in only_a.ran] == [("a", pending["a"])]
    both = await engine.step(CALLER, execution_id, StepRequest())
    assert sorted(r.lane for r in both.ran) == ["a", "b"] or both.status == "completed"
    with pytest.raises(ValidationFailed):
        await engine.step(CALLER, execution_id, StepRequest(lane="nope"))


async def test_refused_unless_paused_and_a_last_step_completes(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await start(engine, CHAIN)
    await wait_element(engine, execution_id, "gate")
    with pytest.raises(InvalidTransition):
        await engine.step(CALLER, execution_id, StepRequest())
    await engine.pause(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", None)
    for _ in range(4):
        result = await engine.step(CALLER, execution_id, StepRequest())
        assert result.status == "paused"
    last = await engine.step(CALLER, execution_id, StepRequest())  # the end element
    assert last.status == "completed" and [r.elementKey for r in last.ran] == ["end"]


async def test_a_step_with_no_lane_to_run_answers_at_once(make_engine: EngineFactory) -> None:
    """Paused after its thread ended and before its final write: nothing to step, and the answer does not wait."""
    engine = await make_engine()
    execution_id = await _paused_at_one(engine)
    actor = engine.registry.get(execution_id)
    assert actor is not None
    for entry in list(actor.state.stack):  # as if the thread's last element had just ended
        actor.state.stack.remove(entry)
    actor.lanes.stepping = set()
    actor.lanes.stepped = {}
    actor.lanes.quiet.clear()
    actor.lanes.settle_step()
    assert actor.lanes.quiet.is_set()
    actor.lanes.stepping = None
