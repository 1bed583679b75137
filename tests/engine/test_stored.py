"""What is stored of the stack and memory snapshots: the seed's shapes with every seed field, our own fields left out
where they hold their default; what the API shows has them back, and what versions before wrote reads as it is."""

from __future__ import annotations

from typing import Any

from procengine.engine.state import ExecutionState, FanOutProgress, Memory, StackEntry, ThreadProgress, state_from_docs
from procengine.engine.stored import seed_memory, seed_stack, stored_memory, stored_stack
from procengine.store.codec import decode, encode

SAVED_AT = "2026-12-07T18:32:05.242Z"
SEED_STACK_FIELDS = {"execution_stack", "paused_at_node", "saved_at", "stack_depth"}
SEED_ENTRY_FIELDS = {"element_id", "element_key", "element_type", "execution_order"}
SEED_MEMORY_FIELDS = {"variables", "node_outputs", "saved_at", "variable_count"}


def _state(signals: dict[str, list[Any]]) -> ExecutionState:
    parked = StackEntry(7, "pack", "task", 9, "main", attempt=2, path="main/ship[1]", remaining_ms=40, rerun=True)
    failure = {"error": "x", "type": "T", "path": "side/ship[1]", "element": "pack"}
    stack = [
        StackEntry(2, "wait", "wait-signal", 4, "main", started_at_ms=1_796_668_325_226),
        StackEntry(5, "ship", "for-each", 5, "side", fanout=FanOutProgress(3, 2, 1, failure, [parked])),
        StackEntry(8, "call", "call-process", 6, "side", path="side/b[0]", child_id=44, due_at_ms=5, held={"a": 1}),
        StackEntry(9, "t", "task", 7, "main", path="main/p[0]", attempt=3, policy={"timeoutMs": 5}),
    ]
    threads = {"main": ThreadProgress("main", 1, 1, 4), "side": ThreadProgress("side", 2, 2, 3)}
    memory = Memory(
        variables={"order_id": "ORD-1", "total": 599.99, "ok": True},
        node_outputs={"init": {"status": "success"}},
        signals=signals,
        scopes={"side/b[0]": {"x": 1}},
    )
    return ExecutionState(stack, memory, threads, next_order=10, paused_at_node=2)


def _stored(state: ExecutionState) -> tuple[Any, Any]:
    stack = decode(encode(stored_stack(state.to_stack_doc(SAVED_AT))))
    memory = decode(encode(stored_memory(state.to_stored_memory_doc(SAVED_AT))))
    return stack, memory


def test_the_shapes_the_api_shows_come_back_from_what_is_stored() -> None:
    for signals in ({}, {"go": [{"yes": 1}]}):
        state = _state(signals)
        stack, memory = _stored(state)

        assert seed_stack(stack) == state.to_stack_doc(SAVED_AT)
        assert list(seed_stack(stack)["execution_stack"][0]) == list(state.to_stack_doc(SAVED_AT)["execution_stack"][0])
        assert seed_memory(memory) == state.to_memory_doc(SAVED_AT)
        # the engine reads what is stored as it is: our defaults are its defaults
        rebuilt = state_from_docs(stack, memory, state.threads)
        assert rebuilt.to_stack_doc(SAVED_AT) == state.to_stack_doc(SAVED_AT)
        assert rebuilt.to_memory_doc(SAVED_AT) == state.to_memory_doc(SAVED_AT)


def test_every_seed_field_is_stored_and_only_our_defaults_are_left_out() -> None:
    stack, memory = _stored(_state({}))

    assert set(stack) >= SEED_STACK_FIELDS and stack["saved_at"] == SAVED_AT and stack["stack_depth"] == 4
    assert all(set(entry) >= SEED_ENTRY_FIELDS for entry in stack["execution_stack"])
    first = stack["execution_stack"][0]
    assert "path" not in first and "attempt" not in first  # the thread's key; 1
    parked = stack["execution_stack"][1]["branches"]["parked"][0]
    assert parked["path"] == "main/ship[1]" and parked["attempt"] == 2  # not their defaults: kept
    assert stack["execution_stack"][3]["attempt"] == 3
    assert set(memory) >= SEED_MEMORY_FIELDS and memory["variable_count"] == 3
    assert "signals" not in memory


def test_a_snapshot_written_out_as_versions_before_wrote_it_reads_as_it_is() -> None:
    state = _state({})
    old_stack: dict[str, Any] = decode(encode(state.to_stack_doc(SAVED_AT)))
    old_memory: dict[str, Any] = decode(encode(state.to_stored_memory_doc(SAVED_AT)))

    assert seed_stack(old_stack) == old_stack
    assert seed_memory(old_memory) == old_memory
    assert seed_stack({"error": "not a map"}) == {"error": "not a map"}  # left for the reader to refuse
    assert seed_memory([1, 2]) == [1, 2]
