"""The memory limit in the interpreter: a value that would take the memory snapshot over the limit fails its
element with LimitExceeded and is not stored; whatever happens, the snapshot never passes the limit."""

from __future__ import annotations

from typing import Any

import pytest

from procengine.engine.compiled import compile_process
from procengine.engine.interpreter import MEMORY_RESERVE, Interpreter
from procengine.engine.outcomes import ElementFailed, Progressed, RunTask
from procengine.errors import LimitExceeded
from procengine.store.codec import encode
from tests.support.interpreter import Run, definition

LIMIT = MEMORY_RESERVE + 16 * 1024


def _run(*elements: dict[str, Any], variables: dict[str, Any] | None = None, limit: int = LIMIT) -> Run:
    compiled = compile_process(definition(*elements))
    interpreter = Interpreter(compiled, memory_limit=limit)
    run = Run(compiled, interpreter, interpreter.initial_state(variables or {}, {"main": 1}))
    _checkpoint(run)
    return run


def _checkpoint(run: Run) -> int:
    """What the actor does after every call: encode the memory (and note its size)."""
    blob = encode(run.state.to_memory_doc("2026-12-01T00:00:00.000Z"))
    run.state.memory_bytes = len(blob)
    return len(blob)


def _task(output: str | None = "out", **fields: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"key": "t", "type": "task", "handler": "h", "next": "e", **fields}
    if output is not None:
        element["output"] = output
    return element


END = {"key": "e", "type": "end"}


def test_an_output_that_fits_is_stored() -> None:
    run = _run(_task(), END)
    assert isinstance(run.drive(), RunTask)
    outcome = run.succeed("x" * 4000)
    assert isinstance(outcome.step, Progressed)
    assert run.variables["out"] == "x" * 4000
    assert _checkpoint(run) <= LIMIT


@pytest.mark.parametrize("output_var", ["out", None])
def test_an_output_that_does_not_fit_fails_the_element_and_is_not_stored(output_var: str | None) -> None:
    # stored once, with a variable `out` or not (the node output names the variable): 17 KB does not fit
    size = 17_000
    run = _run(_task(output_var, retry={"maxAttempts": 3}), END, variables={"keep": 1})
    run.drive()

    outcome = run.succeed("x" * size)

    assert isinstance(outcome.step, ElementFailed)
    assert outcome.step.error_type == "LimitExceeded"
    assert "does not fit in the execution's memory" in outcome.step.error and str(LIMIT) in outcome.step.error
    assert [(e.event, e.error_type) for e in outcome.events] == [("element-failed", "LimitExceeded")]
    assert run.variables == {"keep": 1}
    assert run.state.memory.node_outputs["t"]["type"] == "LimitExceeded"
    assert _checkpoint(run) <= LIMIT


def test_a_measured_size_is_trusted_and_one_over_the_limit_fails() -> None:
    run = _run(_task(None), END)
    run.drive()
    outcome = run.interpreter.task_succeeded(run.state, "main", {"small": "but measured big"}, 0, LIMIT + 1)
    assert isinstance(outcome.step, ElementFailed) and outcome.step.error_type == "LimitExceeded"


def test_a_limit_exceeded_failure_is_not_retried() -> None:
    run = _run(_task(), END)
    run.drive()
    outcome = run.interpreter.task_failed(run.state, "main", "too big", 0, "LimitExceeded", retry=False)
    assert isinstance(outcome.step, ElementFailed) and outcome.step.entry.attempt == 1


def test_set_variable_values_that_do_not_fit_fail_the_element() -> None:
    run = _run(
        {"key": "grow", "type": "set-variable", "set": {"big": "blob + blob"}, "next": "e"},
        END,
        variables={"blob": "y" * 7000},
    )
    step = run.drive()
    assert isinstance(step, ElementFailed) and step.error_type == "LimitExceeded"
    assert "big" not in run.variables
    assert _checkpoint(run) <= LIMIT


def test_a_signal_that_does_not_fit_is_refused_and_not_kept() -> None:
    run = _run({"key": "w", "type": "wait-signal", "signal": "s", "into": "got"}, variables={"blob": "z" * 9000})
    with pytest.raises(LimitExceeded):
        run.interpreter.signal_arrived(run.state, "s", "p" * 8000)
    assert run.state.memory.signals == {}
    run.interpreter.signal_arrived(run.state, "s", "p" * 100)
    assert run.state.memory.signals == {"s": ["p" * 100]}


def test_consuming_a_signal_counts_what_it_frees() -> None:
    # given a waiting signal of 5 KB in a memory with room for about 11 KB more
    run = _run({"key": "w", "type": "wait-signal", "signal": "s", "into": "got"}, variables={"blob": "z" * 5000})
    run.interpreter.signal_arrived(run.state, "s", "p" * 5000)
    _checkpoint(run)
    # when it is consumed into a variable: two copies in, one out, so it fits
    run.drive()
    assert run.variables["got"] == "p" * 5000 and run.state.memory.signals == {}
    assert _checkpoint(run) <= LIMIT


def test_the_snapshot_never_passes_the_limit_whatever_the_outputs() -> None:
    # a loop of a task whose outputs grow until one does not fit
    run = _run(
        {"key": "t", "type": "task", "handler": "h", "output": "last", "next": "keep"},
        {"key": "keep", "type": "set-variable", "set": {"n": "n + 1"}, "next": "again"},
        {"key": "again", "type": "if-condition", "condition": "n < 1000", "then": "t", "else": "e"},
        END,
        variables={"n": 0},
    )
    size = 500
    for _ in range(100):
        step = run.drive()
        _checkpoint(run)
        if isinstance(step, ElementFailed):
            break
        outcome = run.succeed("o" * size)
        assert _checkpoint(run) <= LIMIT
        if isinstance(outcome.step, ElementFailed):
            break
        size += 500
    else:
        raise AssertionError("the outputs never stopped fitting")
    assert _checkpoint(run) <= LIMIT


def test_without_a_limit_nothing_is_refused() -> None:
    run = _run(_task(), END, limit=LIMIT)
    run.interpreter.memory_limit = None
    run.drive()
    assert isinstance(run.succeed("x" * (LIMIT * 2)).step, Progressed)
