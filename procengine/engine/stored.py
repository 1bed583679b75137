"""What is stored of the stack and memory snapshots, and the shapes the API shows given back from it.

The stored blobs are in the seed's shapes, every field of the seed's there with its name (operators read them
straight from Redis: the contract, §5). What is left out is only of our own fields, where they hold their default
(issue 21: a paused execution's bytes in Redis):

- a stack entry's `path` when it is its thread's key, and `attempt` when it is 1 (also in a fan-out's `parked`
  entries);
- the memory's `signals` when none wait.

`StackEntry.from_doc` and `state_from_docs` read those defaults as such, as they always did; `seed_stack` and
`seed_memory` put them back for what the API, export and inspect show, so that their shapes do not change.
Snapshots written before (every field written out) are read as they are.
"""

from __future__ import annotations

from typing import Any


def stored_stack(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a stack document (`ExecutionState.to_stack_doc`)."""
    return {**doc, "execution_stack": [_stored_entry(entry) for entry in doc["execution_stack"]]}


def seed_stack(doc: Any) -> Any:
    """A stored stack document with our defaults back in every entry; what is not a stack document as it is."""
    if not isinstance(doc, dict) or not isinstance(doc.get("execution_stack"), list):
        return doc
    return {**doc, "execution_stack": [_seed_entry(entry) for entry in doc["execution_stack"]]}


def stored_memory(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a memory document (`ExecutionState.to_stored_memory_doc`): no empty `signals`."""
    return doc if doc.get("signals") else {name: value for name, value in doc.items() if name != "signals"}


def seed_memory(doc: Any) -> Any:
    """A stored memory document with `signals` back (empty when none wait); what is not a memory map as it is."""
    if not isinstance(doc, dict) or "signals" in doc or not isinstance(doc.get("variables"), dict):
        return doc
    seed: dict[str, Any] = {}
    for name, value in doc.items():  # in `to_memory_doc`'s order: signals after variable_count
        seed[name] = value
        if name == "variable_count":
            seed["signals"] = {}
    seed.setdefault("signals", {})
    return seed


def _stored_entry(entry: dict[str, Any]) -> dict[str, Any]:
    stored = {
        name: value
        for name, value in entry.items()
        if not (name == "path" and value == entry.get("thread_key")) and not (name == "attempt" and value == 1)
    }
    branches = stored.get("branches")
    if isinstance(branches, dict) and branches.get("parked") is not None:
        stored["branches"] = {**branches, "parked": [_stored_entry(parked) for parked in branches["parked"]]}
    return stored


def _seed_entry(entry: Any) -> Any:
    if not isinstance(entry, dict) or ("path" in entry and "attempt" in entry and "branches" not in entry):
        return entry  # written out (or not an entry: StackEntry.from_doc refuses it)
    seed: dict[str, Any] = {}
    for name, value in entry.items():  # in `StackEntry.to_doc`'s order: path and attempt after thread_key
        seed[name] = value
        if name == "thread_key":
            seed.setdefault("path", entry.get("path", value))
            seed.setdefault("attempt", entry.get("attempt", 1))
    branches = seed.get("branches")
    if isinstance(branches, dict) and isinstance(branches.get("parked"), list):
        seed["branches"] = {**branches, "parked": [_seed_entry(parked) for parked in branches["parked"]]}
    return seed
