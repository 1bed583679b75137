"""What changed between two checkpoints of one execution (`GET …/{id}/checkpoints/{a}/diff/{b}`), from their stack
and memory documents as the API shows them: pure, no I/O."""

from __future__ import annotations

from typing import Any

__all__ = ["checkpoint_diff", "mapping_diff"]


def mapping_diff(before: Any, after: Any) -> dict[str, Any]:
    """`{added: {name: value}, removed: {name: value}, changed: {name: {from, to}}}` between two maps (what is not a
    map reads as empty)."""
    a = before if isinstance(before, dict) else {}
    b = after if isinstance(after, dict) else {}
    return {
        "added": {name: b[name] for name in b if name not in a},
        "removed": {name: a[name] for name in a if name not in b},
        "changed": {name: {"from": a[name], "to": b[name]} for name in a if name in b and a[name] != b[name]},
    }


def checkpoint_diff(stack_a: Any, memory_a: Any, stack_b: Any, memory_b: Any) -> dict[str, Any]:
    """From checkpoint a to checkpoint b: the variables and node outputs (`mapping_diff`), and the stack entries
    (one per pending element of a lane, told apart by lane, element and execution order): added, removed, and
    changed (same element, another attempt, timer or start)."""
    entries_a, entries_b = _entries(stack_a), _entries(stack_b)
    return {
        "variables": mapping_diff(_part(memory_a, "variables"), _part(memory_b, "variables")),
        "nodeOutputs": mapping_diff(_part(memory_a, "node_outputs"), _part(memory_b, "node_outputs")),
        "stack": {
            "added": [entry for key, entry in entries_b.items() if key not in entries_a],
            "removed": [entry for key, entry in entries_a.items() if key not in entries_b],
            "changed": [
                {"from": entry, "to": entries_b[key]}
                for key, entry in entries_a.items()
                if key in entries_b and entries_b[key] != entry
            ],
        },
    }


def _part(memory: Any, name: str) -> Any:
    return memory.get(name) if isinstance(memory, dict) else None


def _entries(stack: Any) -> dict[tuple[str, str, int], dict[str, Any]]:
    listed = stack.get("execution_stack") if isinstance(stack, dict) else None
    entries: dict[tuple[str, str, int], dict[str, Any]] = {}
    for entry in listed if isinstance(listed, list) else []:
        if isinstance(entry, dict):
            lane = str(entry.get("path") or entry.get("thread_key") or "")
            order = entry.get("execution_order")
            entries[(lane, str(entry.get("element_key")), order if isinstance(order, int) else 0)] = entry
    return entries
