"""Pure runs: consecutive pure elements of one lane that share one checkpoint (docs/architecture.md, "Pure runs").

A pure element (set-variable, if-condition, switch) only computes over the execution's memory: it has no side
effect, nothing outside waits for it and nothing it does awaits. A lane that completes one whose next element is
pure too goes on at once, without writing: the run's events wait in the `CheckpointWriter`'s queue, in order, and
the checkpoint after the run's last element writes them all with the state as it is then. Since the lane does not
yield in between, nothing else of the execution (a pause, a signal, another lane) can see or act on the state
between two elements of a run: what it sees is what it would see just after the run's last checkpoint, had each
element had its own.
"""

from __future__ import annotations

from procengine.actors.records import encoded_memory
from procengine.engine.outcomes import Outcome, Progressed
from procengine.engine.state import ExecutionState, StackEntry

__all__ = ["PURE", "goes_on", "measured"]

PURE = frozenset({"set-variable", "if-condition", "switch"})
"""The element types that may share a checkpoint with the next: no side effect, no await, no timer."""
_SAVED_AT = "1970-01-01T00:00:00.000Z"
"""A stand-in for the snapshot's `savedAt` when measuring the memory: every `iso` time has this length."""


def goes_on(outcome: Outcome, state: ExecutionState, lane: str, deferred: int, limit: int) -> bool:
    """Whether the lane may go on to its next element without a checkpoint after this one: this one was pure and
    completed (no failure, caught or not), it touched no other lane, the next is pure and ready to run, and the
    run (`deferred` elements so far, this one not counted) stays within `limit` elements."""
    if deferred + 1 >= limit or not isinstance(outcome.step, Progressed):
        return False
    if outcome.started or outcome.stopped or outcome.woken or outcome.orphaned or outcome.interrupted:
        return False
    if len(outcome.events) != 1:
        return False
    event = outcome.events[0]
    if event.event != "element-completed" or event.element_type not in PURE:
        return False
    return _ready(state.entry(lane))


def _ready(entry: StackEntry | None) -> bool:
    return (
        entry is not None
        and entry.element_type in PURE
        and entry.held is None
        and entry.due_at_ms is None
        and entry.remaining_ms is None
    )


def measured(state: ExecutionState, lane: str, memory_limit: int | None) -> None:
    """Before the next element of a run, when it is one that checks the memory limit (a set-variable): set
    `state.memory_bytes` to what the memory snapshot would take now (`records.snapshot_commit` encodes the same
    document), so that the limit is checked against the size after the element before, as when each element has
    its own checkpoint. An if-condition or switch stores no value of its own size: it checks nothing."""
    entry = state.entry(lane)
    if memory_limit is not None and entry is not None and entry.element_type == "set-variable":
        state.memory_bytes = len(encoded_memory(state, _SAVED_AT))
