"""call-process in the pure interpreter: start (input evaluated, a stable start key), wait, the child's end as the
element's output or failure, and its place in the stack snapshot."""

from __future__ import annotations

from typing import Any

from procengine.engine.outcomes import AwaitChild, ElementFailed, Progressed, StartChild, ThreadEnded
from procengine.engine.state import StackEntry
from tests.support.interpreter import definition, start

CALL: dict[str, Any] = {
    "key": "kyc",
    "type": "call-process",
    "process": "kyc-check",
    "version": 2,
    "input": {"customer": "order.customer", "strict": "true"},
    "output": "verdict",
    "next": "after",
}
AFTER = {"key": "after", "type": "set-variable", "set": {"ok": "verdict.passed"}}


def test_a_call_starts_its_child_with_the_input_then_waits_for_it() -> None:
    run = start(definition(CALL, AFTER), {"order": {"customer": "ada"}})
    outcome = run.begin()
    step = outcome.step
    assert isinstance(step, StartChild)
    assert (step.process, step.version, step.input) == ("kyc-check", 2, {"customer": "ada", "strict": True})
    assert step.start_key == "1.1"
    assert [e.event for e in outcome.events] == ["element-started"]
    assert isinstance(run.begin().step, StartChild)  # not started yet: asked again, same key
    assert run.begin().step == StartChild(run.state.stack[0], "kyc-check", 2, {"customer": "ada", "strict": True})

    run.interpreter.child_started(run.state, "main", 41)
    waiting = run.begin().step
    assert isinstance(waiting, AwaitChild) and waiting.child_id == 41
    doc = run.state.to_stack_doc("now")["execution_stack"][0]
    assert doc["child_execution_id"] == 41
    assert StackEntry.from_doc(doc).child_id == 41


def test_a_completed_child_gives_its_variables_to_output() -> None:
    run = start(definition(CALL, AFTER), {"order": {"customer": "ada"}})
    run.begin()
    run.interpreter.child_started(run.state, "main", 41)
    outcome = run.interpreter.child_ended(run.state, "main", "completed", {"passed": True}, None, 5)
    assert isinstance(outcome.step, Progressed)
    assert isinstance(run.drive(), ThreadEnded)
    assert run.variables["verdict"] == {"passed": True} and run.variables["ok"] is True


def test_a_failed_or_cancelled_child_fails_the_element_as_child_failed() -> None:
    for status, error, message in [
        ("failed", "blocked", "child execution 41 failed: blocked"),
        ("cancelled", None, "child execution 41 cancelled"),
    ]:
        run = start(definition(CALL, AFTER), {"order": {"customer": "ada"}})
        run.begin()
        run.interpreter.child_started(run.state, "main", 41)
        outcome = run.interpreter.child_ended(run.state, "main", status, None, error, 5)
        assert isinstance(outcome.step, ElementFailed)
        assert (outcome.step.error_type, outcome.step.error) == ("ChildFailed", message)


def test_a_child_that_could_not_start_is_caught_like_any_child_failure() -> None:
    call = {**CALL, "catch": [{"errors": ["ChildFailed"], "next": "after", "into": "why"}]}
    run = start(definition(call, AFTER), {"order": {"customer": "ada"}})
    run.begin()
    outcome = run.interpreter.child_ended(run.state, "main", "could not start", None, "process 'x' not found", 5)
    assert isinstance(outcome.step, Progressed)
    assert run.variables["why"]["error"] == "the child execution could not start: process 'x' not found"


def test_a_result_expression_that_fails_fails_the_element() -> None:
    run = start(definition({**CALL, "result": "missing.field"}, AFTER), {"order": {"customer": "ada"}})
    run.begin()
    run.interpreter.child_started(run.state, "main", 41)
    outcome = run.interpreter.child_ended(run.state, "main", "completed", {"passed": True}, None, 5)
    assert isinstance(outcome.step, ElementFailed) and outcome.step.error_type == "ExpressionError"
