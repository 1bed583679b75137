"""The stack and memory documents: the seed's field names, a faithful round trip, and StateCorrupted."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from procengine.engine.definitions import ProcessDefinition
from procengine.engine.outcomes import RunTask, Sleep
from procengine.engine.state import ExecutionState, StackEntry, ThreadProgress, expand_memory_doc, state_from_docs
from procengine.errors import StateCorrupted
from procengine.store.codec import decode, encode
from tests.support.interpreter import Run, definition, start

SAVED_AT = "2026-02-02T10:30:00Z"


def _threads(run: Run) -> dict[str, ThreadProgress]:
    """Fresh copies of the thread records, as the store would give them back."""
    return {key: ThreadProgress.from_doc(p.to_doc()) for key, p in run.state.threads.items()}


@pytest.fixture
def paused(order_definition: ProcessDefinition) -> Run:
    """The example at its approval wait, with a signal of another name kept, frozen for a pause."""
    run = start(order_definition, {"order_id": "ORD-12345", "order_total": 599.99})
    task = run.drive(now=0)
    assert isinstance(task, RunTask)
    run.succeed({"id": "ORD-12345"}, now=10)
    run.drive(now=20)
    run.interpreter.signal_arrived(run.state, "other", {"n": 1})
    run.interpreter.freeze_timers(run.state, 30)
    run.state.paused_at_node = run.state.stack[0].element_id
    return run


def test_the_stack_document_has_the_seed_fields(paused: Run) -> None:
    doc = paused.state.to_stack_doc(SAVED_AT)
    # the seed's fields, with the seed's names and types
    assert {"execution_stack", "paused_at_node", "saved_at", "stack_depth"} <= doc.keys()
    (entry,) = doc["execution_stack"]
    assert {k: entry[k] for k in ("element_id", "element_key", "element_type", "execution_order")} == {
        "element_id": 5,
        "element_key": "approve",
        "element_type": "wait-signal",
        "execution_order": 4,
    }
    assert (doc["paused_at_node"], doc["saved_at"], doc["stack_depth"]) == (5, SAVED_AT, 1)
    assert entry["thread_key"] == "main"


def test_the_memory_document_has_the_seed_fields(paused: Run) -> None:
    doc = paused.state.to_memory_doc(SAVED_AT)
    assert {"variables", "node_outputs", "saved_at", "variable_count"} <= doc.keys()
    assert doc["variables"] == {
        "order_id": "ORD-12345",
        "order_total": 599.99,
        "order": {"id": "ORD-12345"},
        "is_premium": True,
    }
    assert doc["variable_count"] == 4
    assert doc["saved_at"] == SAVED_AT
    assert doc["node_outputs"]["fetch_order"] == {"status": "success", "data": {"id": "ORD-12345"}}
    assert doc["signals"] == {"other": [{"n": 1}]}


def test_state_from_docs_round_trips_the_documents(paused: Run) -> None:
    # given the documents of a paused execution
    stack_doc = paused.state.to_stack_doc(SAVED_AT)
    memory_doc = paused.state.to_memory_doc(SAVED_AT)
    # when the state is rebuilt from (copies of) them
    rebuilt = state_from_docs(copy.deepcopy(stack_doc), copy.deepcopy(memory_doc), _threads(paused))
    # then it writes the same documents again, and is the same state
    assert rebuilt.to_stack_doc(SAVED_AT) == stack_doc
    assert rebuilt.to_memory_doc(SAVED_AT) == memory_doc
    assert rebuilt == paused.state


def test_a_rebuilt_state_goes_on_where_the_old_one_stopped(order_definition: ProcessDefinition) -> None:
    # given an execution paused during its cool-off, 400 ms into the 1000
    run = start(order_definition, {"order_id": "A", "order_total": 1.0})
    run.drive(now=0)
    run.succeed({}, now=0)
    run.interpreter.signal_arrived(run.state, "approval", "yes")
    run.drive(now=0)
    run.interpreter.freeze_timers(run.state, 400)
    stack_doc = run.state.to_stack_doc(SAVED_AT)
    memory_doc = run.state.to_memory_doc(SAVED_AT)
    assert stack_doc["execution_stack"][0]["remaining_ms"] == 600
    # when it is rebuilt and resumed at t=10_000
    rebuilt = state_from_docs(stack_doc, memory_doc, _threads(run))
    run.interpreter.thaw_timers(rebuilt, 10_000)
    # then it finishes at 10_600 with the same variables
    assert isinstance(run.interpreter.begin(rebuilt, "main", 10_599).step, Sleep)
    run.interpreter.begin(rebuilt, "main", 10_600)
    run.interpreter.begin(rebuilt, "main", 10_600)
    assert rebuilt.stack == []
    assert rebuilt.memory.variables["approval"] == "yes"
    assert rebuilt.threads["main"].completed_nodes == 6
    assert rebuilt.next_order == run.state.next_order + 1


def test_optional_entry_fields_are_written_only_when_set() -> None:
    entry = StackEntry(element_id=1, element_key="a", element_type="task", execution_order=1, thread_key="t")
    assert entry.to_doc() == {
        "element_id": 1,
        "element_key": "a",
        "element_type": "task",
        "execution_order": 1,
        "thread_key": "t",
        "path": "t",
        "attempt": 1,
    }
    assert StackEntry.from_doc(entry.to_doc()) == entry


def test_a_thread_record_round_trips() -> None:
    progress = ThreadProgress("main", 7, 1, 5, completed_nodes=2, failed_nodes=1, status="failed")
    doc = progress.to_doc()
    assert {k: doc[k] for k in ("threadExecutionID", "processThreadID", "completedNodes", "totalNodes")} == {
        "threadExecutionID": 7,
        "processThreadID": 1,
        "completedNodes": 2,
        "totalNodes": 5,
    }
    assert ThreadProgress.from_doc(doc) == progress


def test_a_stack_doc_without_next_order_continues_after_its_highest_order() -> None:
    # given a hand-written (seed-like) stack whose one entry is the 3rd element run
    stack_doc = {
        "execution_stack": [
            {
                "element_id": 2,
                "element_key": "b",
                "element_type": "set-variable",
                "execution_order": 3,
                "thread_key": "main",
            }
        ],
        "paused_at_node": 2,
        "saved_at": SAVED_AT,
        "stack_depth": 1,
    }
    memory_doc = {"variables": {}, "node_outputs": {}, "saved_at": SAVED_AT, "variable_count": 0}
    state = state_from_docs(stack_doc, memory_doc, {"main": ThreadProgress("main", 1, 1, 3)})
    # then the next element pushed comes after it, never before
    assert state.next_order == 4
    a = {"key": "a", "type": "set-variable", "set": {"x": "1"}, "next": "b"}
    b = {"key": "b", "type": "set-variable", "set": {"x": "2"}, "next": "c"}
    run = start(definition(a, b, {"key": "c", "type": "end"}))
    run.state = state
    run.begin()
    assert [(e.element_key, e.execution_order) for e in state.stack] == [("c", 4)]


# --- malformed documents -----------------------------------------------------------------------


def _good_docs() -> tuple[dict[str, Any], dict[str, Any], dict[str, ThreadProgress]]:
    run = start(definition({"key": "d", "type": "delay", "durationMs": 100}), {"a": 1})
    run.begin(now=0)
    return run.state.to_stack_doc(SAVED_AT), run.state.to_memory_doc(SAVED_AT), _threads(run)


def test_the_good_docs_are_good() -> None:
    stack_doc, memory_doc, threads = _good_docs()
    assert isinstance(state_from_docs(stack_doc, memory_doc, threads), ExecutionState)


def _entry(stack: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = stack["execution_stack"][0]
    return entry


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda s, m: ([], m), id="stack is not a map"),
        pytest.param(lambda s, m: ({**s, "execution_stack": {"0": _entry(s)}}, m), id="stack is not a list"),
        pytest.param(lambda s, m: ({k: v for k, v in s.items() if k != "execution_stack"}, m), id="stack is missing"),
        pytest.param(lambda s, m: ({**s, "execution_stack": ["d"]}, m), id="entry is not a map"),
        pytest.param(lambda s, m: (_without(s, "element_key"), m), id="entry lacks element_key"),
        pytest.param(lambda s, m: (_without(s, "thread_key"), m), id="entry lacks thread_key"),
        pytest.param(lambda s, m: (_with(s, element_id=True), m), id="element_id is a bool"),
        pytest.param(lambda s, m: (_with(s, attempt=False), m), id="attempt is a bool"),
        pytest.param(lambda s, m: (_with(s, execution_order="1"), m), id="execution_order is a string"),
        pytest.param(lambda s, m: (_with(s, due_at_ms=1.5), m), id="due_at_ms is a float"),
        pytest.param(lambda s, m: (_with(s, element_key=5), m), id="element_key is a number"),
        pytest.param(lambda s, m: ({**s, "next_order": True}, m), id="next_order is a bool"),
        pytest.param(lambda s, m: ({**s, "paused_at_node": "5"}, m), id="paused_at_node is a string"),
        pytest.param(lambda s, m: (_with(s, thread_key="ghost"), m), id="stack names an unknown thread"),
        pytest.param(lambda s, m: (s, [m]), id="memory is not a map"),
        pytest.param(lambda s, m: (s, {**m, "variables": [1, 2]}), id="variables are not a map"),
        pytest.param(lambda s, m: (s, {k: v for k, v in m.items() if k != "variables"}), id="variables are missing"),
        pytest.param(lambda s, m: (s, {**m, "variables": {1: "x"}}), id="variable names are not strings"),
        pytest.param(lambda s, m: (s, {**m, "node_outputs": "x"}), id="node_outputs are not a map"),
        pytest.param(lambda s, m: (s, {**m, "signals": []}), id="signals are not a map"),
        pytest.param(lambda s, m: (s, {**m, "signals": {"go": "payload"}}), id="a signal queue is not a list"),
    ],
)
def test_malformed_documents_raise_state_corrupted(break_it: Any) -> None:
    # given good documents with one thing broken
    stack_doc, memory_doc, threads = _good_docs()
    broken_stack, broken_memory = break_it(copy.deepcopy(stack_doc), copy.deepcopy(memory_doc))
    # when / then
    with pytest.raises(StateCorrupted) as caught:
        state_from_docs(broken_stack, broken_memory, threads)
    assert caught.value.code == "STATE_CORRUPTED"


@pytest.mark.parametrize(
    "doc",
    [
        "not a map",
        {"threadKey": "t", "threadExecutionID": 1, "processThreadID": 1},  # lacks totalNodes
        {"threadKey": "t", "threadExecutionID": True, "processThreadID": 1, "totalNodes": 1},
        {"threadKey": 5, "threadExecutionID": 1, "processThreadID": 1, "totalNodes": 1},
    ],
)
def test_malformed_thread_records_raise_state_corrupted(doc: Any) -> None:
    with pytest.raises(StateCorrupted):
        ThreadProgress.from_doc(doc)


def _without(stack: dict[str, Any], key: str) -> dict[str, Any]:
    del _entry(stack)[key]
    return stack


def _with(stack: dict[str, Any], **fields: Any) -> dict[str, Any]:
    _entry(stack).update(fields)
    return stack


def test_the_stored_memory_holds_a_task_output_once_and_reads_back_in_the_seed_shape(paused: Run) -> None:
    big = {"lines": ["x" * 100] * 10}
    paused.state.memory.variables["order"] = big
    paused.state.memory.node_outputs["fetch_order"] = {"status": "success", "data": big}
    seed = paused.state.to_memory_doc(SAVED_AT)

    stored = decode(encode(paused.state.to_stored_memory_doc(SAVED_AT)))

    assert stored["node_outputs"]["fetch_order"] == {"status": "success", "dataFrom": "order"}
    assert len(encode(stored)) < len(encode(seed)) - 1000
    assert expand_memory_doc(stored) == decode(encode(seed))
    rebuilt = state_from_docs(paused.state.to_stack_doc(SAVED_AT), stored, _threads(paused))
    assert rebuilt.to_memory_doc(SAVED_AT) == decode(encode(seed))


def test_an_output_no_longer_in_its_variable_is_stored_whole(paused: Run) -> None:
    paused.state.memory.variables["order"] = {"id": "replaced by a later element"}
    paused.state.memory.node_outputs["fetch_order"] = {"status": "success", "data": {"id": "x" * 100}}

    stored = paused.state.to_stored_memory_doc(SAVED_AT)

    assert stored["node_outputs"]["fetch_order"] == {"status": "success", "data": {"id": "x" * 100}}


def test_a_data_from_naming_no_variable_is_state_corrupted(paused: Run) -> None:
    memory = paused.state.to_memory_doc(SAVED_AT)
    memory["node_outputs"]["fetch_order"] = {"status": "success", "dataFrom": "nowhere"}
    with pytest.raises(StateCorrupted, match="dataFrom"):
        state_from_docs(paused.state.to_stack_doc(SAVED_AT), memory, _threads(paused))
