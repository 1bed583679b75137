"""The interpreter's side of the step controls (issue 20, point 3), pure: skip, fail with a type, move a lane, a
policy override; and `engine/steps.py` (which list an element stands in)."""

from __future__ import annotations

import pytest

from procengine.engine.compiled import compile_process
from procengine.engine.outcomes import ElementFailed, Progressed, RunTask
from procengine.engine.policy import retry_policy, timeout_ms
from procengine.engine.steps import containers, same_list
from tests.support.interpreter import definition, start

PROCESS = definition(
    {"key": "a", "type": "task", "handler": "h", "output": "out", "next": "b",
     "retry": {"maxAttempts": 1}, "catch": [{"errors": ["Rejected"], "next": "c"}]},
    {"key": "b", "type": "if-condition", "condition": "true", "then": "c"},
    {"key": "c", "type": "parallel", "branches": [
        {"key": "x", "elements": [{"key": "x1", "type": "end"}]},
        {"key": "y", "elements": [{"key": "y1", "type": "for-each", "items": "[1]",
                                   "body": {"elements": [{"key": "z", "type": "end"}]}}]},
    ]},
)  # fmt: skip


def test_each_element_stands_in_one_list() -> None:
    process = compile_process(PROCESS)
    assert containers(process) == {
        "a": "main", "b": "main", "c": "main", "x1": "c[x]", "y1": "c[y]", "z": "y1[*]",
    }  # fmt: skip
    assert same_list(process, "a", "c") and not same_list(process, "a", "x1") and not same_list(process, "x1", "y1")
    assert not same_list(process, "nope", "a")


def test_a_skip_follows_next_and_stores_an_output_given() -> None:
    run = start(PROCESS)
    assert isinstance(run.drive(), RunTask)
    outcome = run.interpreter.skip(run.state, "main", 5, {"v": 1}, stored=True)
    assert isinstance(outcome.step, Progressed)
    assert run.state.memory.node_outputs["a"] == {"status": "skipped", "counted": True, "data": {"v": 1}}
    assert run.state.memory.variables["out"] == {"v": 1}
    assert [e.element_key for e in run.state.stack] == ["b"]
    assert run.state.threads["main"].completed_nodes == 1
    with pytest.raises(ValueError, match="no single next"):
        run.interpreter.skip(run.state, "main", 5)


def test_a_fail_with_a_type_a_catch_takes() -> None:
    run = start(PROCESS)
    run.drive()
    caught = run.interpreter.fail(run.state, "main", "no", 5, "Rejected")
    assert isinstance(caught.step, Progressed) and [e.element_key for e in run.state.stack] == ["c"]
    run = start(PROCESS)
    run.drive()
    failed = run.interpreter.fail(run.state, "main", "no", 5, "Other")
    assert isinstance(failed.step, ElementFailed) and run.state.threads["main"].status == "failed"


def test_a_moved_lane_starts_afresh_and_a_policy_override_is_read() -> None:
    run = start(PROCESS)
    run.drive()
    [old] = run.state.stack
    moved = run.interpreter.move_lane(run.state, "main", "c")
    assert (moved.element_key, moved.attempt) == ("c", 1) and moved.execution_order > old.execution_order
    run = start(PROCESS)
    run.drive()
    [entry] = run.state.stack
    entry.policy = {"retry": {"maxAttempts": 2, "backoffMs": 10}, "timeoutMs": 7}
    element = run.process.elements["a"]
    assert timeout_ms(entry, element) == 7  # type: ignore[arg-type]
    retry = run.interpreter.task_failed(run.state, "main", "boom", 5, "Boom")
    assert retry.events[0].event == "element-retry" and entry.due_at_ms == 15  # 2 attempts, not the definition's 1
    entry.policy = {"retry": {"maxAttempts": "x"}}  # not as the API stores it: the definition's
    assert retry_policy(entry, element).maxAttempts == 1  # type: ignore[arg-type]
