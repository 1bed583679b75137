"""What a retry or a resume starts again on the stack (pure: no clock, no Redis).

- `reset`: an element that failed starts again: attempts from 1, no timer, a new execution order (a task's
  handler sees a new run, a call-process's child key is new).
- `retry_held`: every failure held on the stack (`onExhausted: pause`) is reset (a call-process starts a new
  child); the resume of a paused execution, and a retry, do it.
- `restore`: a parallel or for-each that failed because one of its lanes failed for good kept the entries its
  lanes had on the stack then (`FanOutProgress.parked`); a retry puts them back, the failed lane's element reset
  and the stopped siblings' elements to run again (a task is re-run, its log says so; a call-process starts a new
  child: the one it waited for was cancelled when its lane stopped). The lanes that had ended keep their results
  in the fan-out's record and do not run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procengine.engine.state import ExecutionState, StackEntry

__all__ = ["Restored", "reset", "restorable", "restore", "retry_held"]


def reset(state: ExecutionState, entry: StackEntry) -> None:
    """An element that failed starts again: attempts from 1, no timer, a new execution order."""
    entry.attempt = 1
    entry.started_at_ms = entry.due_at_ms = entry.remaining_ms = None
    entry.rerun = False
    entry.fanout = None
    entry.held = None
    entry.execution_order = state.next_order
    state.next_order += 1


def retry_held(state: ExecutionState) -> list[dict[str, Any]]:
    """Reset every element held as failed on the stack; what was reset, for the log:
    [{element, thread, path?, attempts, error, type}]."""
    retried: list[dict[str, Any]] = []
    for entry in state.stack:
        held = entry.held
        if held is None:
            continue
        item: dict[str, Any] = {"element": entry.element_key, "thread": entry.thread_key, "attempts": entry.attempt}
        if entry.path != entry.thread_key:
            item["path"] = entry.path
        item.update(error=held.get("error"), type=held.get("type"))
        if entry.child_id is not None:  # a call whose child failed: a new child (a new order, a new start key)
            item["childExecutionID"] = entry.child_id
            entry.child_id = None
        reset(state, entry)
        retried.append(item)
    return retried


def restorable(entry: StackEntry) -> bool:
    """A fan-out that failed with its lanes kept for a retry."""
    fan = entry.fanout
    return fan is not None and fan.failure is not None and fan.parked is not None


@dataclass(slots=True)
class Restored:
    failed: list[StackEntry] = field(default_factory=list)
    """The elements whose failure failed the fan-out (one per fan-out level): the caller resets them."""
    fanouts: list[StackEntry] = field(default_factory=list)
    """The fan-out elements that go on (the outer one first)."""
    resumed: list[str] = field(default_factory=list)
    """The lanes of the stopped siblings put back, to run again."""


def restore(state: ExecutionState, entry: StackEntry, into: Restored | None = None) -> Restored:
    """Put the lanes a failed fan-out kept back on the stack (see the module's doc); nested fan-outs that failed
    the lane are restored in turn."""
    restored = into if into is not None else Restored()
    fan = entry.fanout
    assert fan is not None and fan.failure is not None and fan.parked is not None
    failed_path = fan.failure.get("path")
    parked, fan.parked, fan.failure = fan.parked, None, None
    restored.fanouts.append(entry)
    for lane_entry in parked:
        state.stack.append(lane_entry)
        if lane_entry.path == failed_path:
            if restorable(lane_entry):
                restore(state, lane_entry, restored)
            else:
                restored.failed.append(lane_entry)
            continue
        restored.resumed.append(lane_entry.path)
        if lane_entry.held is not None:  # held when the fan-out failed: a retry retries it too
            restored.failed.append(lane_entry)
            continue
        if lane_entry.child_id is not None:  # its child was cancelled when the lane stopped: a new one
            lane_entry.child_id = None
            lane_entry.execution_order = state.next_order
            state.next_order += 1
        if lane_entry.started_at_ms is not None and lane_entry.fanout is None:
            lane_entry.started_at_ms = None  # cut short by the stop: it starts again, and says it is a re-run
            lane_entry.rerun = True
    return restored
