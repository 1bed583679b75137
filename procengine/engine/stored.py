"""What is stored of the stack and memory snapshots, and the seed's shapes given back from it.

The seed's shapes (`ExecutionState.to_stack_doc`, `to_memory_doc`) are what the API, export and inspect show.
What is stored leaves out what can be derived from the rest and names a stack entry's fields in one or two
letters (issue 21: a paused execution's bytes in Redis):

- the stack: `{"s": [entry, ...], "n": next_order, "p": paused_at_node}` (`p` left out while None); an entry's
  fields as in `STACK_NAMES`, its `path` left out when it is its thread's key and its `attempt` when 1;
  `saved_at` (the state hash's `savedAt`) and `stack_depth` (the number of entries) are not stored;
- the memory: the seed's map without `saved_at` and `variable_count` (the number of variables), and without
  `signals` when none wait (the engine before this read such a map as it is).

`seed_stack` and `seed_memory` give the seed's shapes back from either this or what versions before it wrote
(the seed's shapes themselves, told apart by `execution_stack`); anything else is passed through for the reader
to refuse as before.
"""

from __future__ import annotations

from typing import Any

STACK_NAMES = {
    "element_id": "i",
    "element_key": "k",
    "element_type": "t",
    "execution_order": "o",
    "thread_key": "h",
    "path": "p",
    "attempt": "a",
    "branches": "b",
    "child_execution_id": "c",
    "due_at_ms": "d",
    "remaining_ms": "r",
    "started_at_ms": "s",
    "rerun": "x",
    "held": "held",  # rare: the full name, for whoever looks at the stored stack
    "policy": "policy",
}
"""A stack entry's field (in `StackEntry.to_doc`'s order) -> its stored name."""
_SEED_NAMES = {short: name for name, short in STACK_NAMES.items()}
ENTRIES, NEXT_ORDER, PAUSED_AT = "s", "n", "p"


def stored_stack(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a stack document in the seed's shape (`to_stack_doc`)."""
    stored: dict[str, Any] = {
        ENTRIES: [_stored_entry(entry) for entry in doc["execution_stack"]],
        NEXT_ORDER: doc["next_order"],
    }
    if doc.get("paused_at_node") is not None:
        stored[PAUSED_AT] = doc["paused_at_node"]
    return stored


def seed_stack(doc: Any, saved_at: str | None) -> Any:
    """The seed's shape of a stored stack document; a document in the seed's shape already, or one that is not
    a stored stack at all, as it is."""
    if not isinstance(doc, dict) or "execution_stack" in doc or not isinstance(doc.get(ENTRIES), list):
        return doc
    entries = [_seed_entry(entry) for entry in doc[ENTRIES]]
    return {
        "execution_stack": entries,
        "paused_at_node": doc.get(PAUSED_AT),
        "saved_at": saved_at,
        "stack_depth": len(entries),
        "next_order": doc.get(NEXT_ORDER),
    }


def stored_memory(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a memory document (`to_stored_memory_doc`): without what is derived."""
    return {
        name: value
        for name, value in doc.items()
        if name not in ("saved_at", "variable_count") and not (name == "signals" and not value)
    }


def seed_memory(doc: Any, saved_at: str | None) -> Any:
    """The seed's shape of a stored memory document (`dataFrom` references are left for `expand_memory_doc`); one
    written before (it has `variable_count`), or one that is not a memory map, as it is."""
    if not isinstance(doc, dict) or "variable_count" in doc or not isinstance(doc.get("variables"), dict):
        return doc
    seed: dict[str, Any] = {
        "variables": doc["variables"],
        "node_outputs": doc.get("node_outputs", {}),
        "saved_at": saved_at,
        "variable_count": len(doc["variables"]),
        "signals": doc.get("signals", {}),
    }
    seed.update((name, value) for name, value in doc.items() if name not in seed)
    return seed


def _stored_entry(entry: dict[str, Any]) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    for name, value in entry.items():
        if name == "path" and value == entry.get("thread_key"):
            continue
        if name == "attempt" and value == 1:
            continue
        if name == "branches" and isinstance(value, dict) and value.get("parked") is not None:
            value = {**value, "parked": [_stored_entry(parked) for parked in value["parked"]]}
        stored[STACK_NAMES.get(name, name)] = value
    return stored


def _seed_entry(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry  # StackEntry.from_doc refuses it
    by_name: dict[Any, Any] = {_SEED_NAMES.get(short, short): value for short, value in entry.items()}
    seed: dict[str, Any] = {}
    for name in STACK_NAMES:
        if name in by_name:
            seed[name] = by_name[name]
        elif name == "path" and "thread_key" in by_name:
            seed[name] = by_name["thread_key"]
        elif name == "attempt":
            seed[name] = 1
    branches = seed.get("branches")
    if isinstance(branches, dict) and isinstance(branches.get("parked"), list):
        seed["branches"] = {**branches, "parked": [_seed_entry(parked) for parked in branches["parked"]]}
    seed.update((name, value) for name, value in by_name.items() if name not in seed)
    return seed
