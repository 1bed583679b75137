"""What is stored of the stack and memory snapshots: nothing derived, and the seed's shapes given back, from it and
from what versions before it wrote (the seed's shapes themselves)."""

from __future__ import annotations

from typing import Any

from procengine.engine.state import ExecutionState, FanOutProgress, Memory, StackEntry, ThreadProgress, state_from_docs
from procengine.engine.stored import seed_memory, seed_stack, stored_memory, stored_stack
from procengine.store.codec import decode, encode

SAVED_AT = "2026-12-07T18:32:05.242Z"


def _state() -> ExecutionState:
    parked = StackEntry(7, "pack", "task", 9, "main", attempt=2, path="main/ship[1]", remaining_ms=40, rerun=True)
    stack = [
        StackEntry(2, "wait", "wait-signal", 4, "main", started_at_ms=1_796_668_325_226),
        StackEntry(
            5,
            "ship",
            "for-each",
            5,
            "side",
            fanout=FanOutProgress(
                3, 2, 1, {"error": "x", "type": "T", "path": "side/ship[1]", "element": "pack"}, [parked]
            ),
        ),
        StackEntry(8, "call", "call-process", 6, "side", path="side/b[0]", child_id=44, due_at_ms=5, held={"a": 1}),
        StackEntry(9, "t", "task", 7, "main", path="main/p[0]", attempt=3, policy={"timeoutMs": 5}),
    ]
    threads = {"main": ThreadProgress("main", 1, 1, 4), "side": ThreadProgress("side", 2, 2, 3)}
    memory = Memory(
        variables={"order_id": "ORD-1", "total": 599.99, "ok": True},
        node_outputs={"init": {"status": "success"}},
        signals={"go": [{"yes": 1}]},
        scopes={"side/b[0]": {"x": 1}},
    )
    return ExecutionState(stack, memory, threads, next_order=10, paused_at_node=2)


def test_the_seed_shapes_come_back_from_what_is_stored() -> None:
    state = _state()
    stack = decode(encode(stored_stack(state.to_stack_doc(SAVED_AT))))
    memory = decode(encode(stored_memory(state.to_stored_memory_doc(SAVED_AT))))

    assert seed_stack(stack, SAVED_AT) == state.to_stack_doc(SAVED_AT)
    assert seed_memory(memory, SAVED_AT) == state.to_memory_doc(SAVED_AT)
    rebuilt = state_from_docs(seed_stack(stack, SAVED_AT), seed_memory(memory, SAVED_AT), state.threads)
    assert rebuilt.to_stack_doc(SAVED_AT) == state.to_stack_doc(SAVED_AT)
    assert rebuilt.to_memory_doc(SAVED_AT) == state.to_memory_doc(SAVED_AT)


def test_what_is_derived_is_not_stored() -> None:
    state = _state()
    state.memory.signals = {}
    stack = stored_stack(state.to_stack_doc(SAVED_AT))
    memory = stored_memory(state.to_stored_memory_doc(SAVED_AT))

    assert set(stack) == {"s", "n", "p"}  # no saved_at (the hash's savedAt), no stack_depth (len of the entries)
    assert stack["s"][0] == {"i": 2, "k": "wait", "t": "wait-signal", "o": 4, "h": "main", "s": 1_796_668_325_226}
    assert set(memory) == {"variables", "node_outputs", "scopes"}  # no saved_at, variable_count, empty signals
    seed = state.to_stack_doc(SAVED_AT)
    assert len(encode(stack)) < len(encode(seed)) / 2


def test_a_snapshot_in_the_seed_shapes_as_versions_before_wrote_it_is_read_as_it_is() -> None:
    state = _state()
    old_stack: dict[str, Any] = decode(encode(state.to_stack_doc(SAVED_AT)))
    old_memory: dict[str, Any] = decode(encode(state.to_stored_memory_doc(SAVED_AT)))

    assert seed_stack(old_stack, None) == old_stack
    assert seed_memory(old_memory, None) == old_memory
    # what is not a snapshot at all is left for the reader to refuse
    assert seed_stack({"error": "not a map"}, SAVED_AT) == {"error": "not a map"}
    assert seed_memory([1, 2], SAVED_AT) == [1, 2]
