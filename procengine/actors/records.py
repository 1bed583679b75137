"""How the actor's state becomes stored records: element records, thread records, log entries,
transition details. Pure functions, so the shapes are in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from procengine.api.service import Caller
from procengine.engine.lanes import is_branch
from procengine.engine.outcomes import ElementEvent, ElementFailed
from procengine.engine.state import ExecutionState, StackEntry
from procengine.engine.stored import stored_memory, stored_stack
from procengine.runtime.clock import iso
from procengine.store.codec import encode
from procengine.store.executions import BUFFERED_SIGNALS, Commit, LogRecord, Scalar
from procengine.store.search import ATTRIBUTES_FIELD, encode_attributes

MAX_ATTEMPTS_KEPT = 20
"""A task's element record keeps its latest attempts, this many, in `attemptHistory`."""


@dataclass(slots=True)
class Failure:
    """An element failed for good: the execution fails with it."""

    element_key: str
    error: str
    error_type: str
    attempts: int
    record: dict[str, Any] | None = None
    """The failed element's record, when no element event writes it (a quarantine)."""

    @classmethod
    def of(cls, step: ElementFailed) -> Failure:
        return cls(step.entry.element_key, step.error, step.error_type, step.entry.attempt)

    def doc(self) -> dict[str, Any]:
        """The execution's `error`, in its hash, its status and its `failed` log entry."""
        return {"element": self.element_key, "error": self.error, "type": self.error_type, "attempts": self.attempts}


def record_field(element_key: str, path: str | None) -> str:
    """The field of an element's record in the elements hash: its key for an element of a thread itself, and
    `<lane>/<key>` in a branch or iteration (`main/ship[3]/pack`), so that each iteration keeps a record of its own."""
    return f"{path}/{element_key}" if path is not None and is_branch(path) else element_key


def element_record(event: ElementEvent) -> dict[str, Any]:
    """The latest run of an element in its lane (the thread, or one branch or iteration: its `path`); fields with no
    value are left out."""
    record: dict[str, Any]
    if event.event == "element-completed" and event.element_type != "task":  # most: a pure element's end
        record = {"key": event.element_key, "type": event.element_type, "threadKey": event.thread_key}
        if event.path is not None:
            record["path"] = event.path
        record["attempts"] = event.attempt
        if event.started_at_ms is not None:
            record["startedAt"] = iso(event.started_at_ms)
        record["status"] = "completed"
        record["stoppedAt"] = iso(event.at_ms)
        if event.output is not None:
            record["output"] = event.output
        return record  # the same map, in the same order, as below
    record = {
        "key": event.element_key,
        "type": event.element_type,
        "threadKey": event.thread_key,
        "path": event.path,
        "attempts": event.attempt,
        "startedAt": _iso_or_none(event.started_at_ms),
    }
    if event.event == "element-started":
        record.update(status="running", startedAt=iso(event.at_ms))
    elif event.event == "element-retry":
        record.update(
            status="retrying", error=event.error, errorType=event.error_type, retryAt=_iso_or_none(event.retry_at_ms)
        )
    elif event.event == "element-completed":
        record.update(status="completed", stoppedAt=iso(event.at_ms), output=event.output)
    else:
        record.update(
            status="failed",
            stoppedAt=iso(event.at_ms),
            error=event.error,
            errorType=event.error_type,
            caught=event.caught,
        )
        if event.held:  # held on the stack (onExhausted: pause): the execution is paused for it
            record["held"] = True
    if event.element_type == "task":  # the input and this attempt; `carried` adds the earlier attempts
        record.update(input=event.input, attemptHistory=[_attempt_of(event)])
    return _without_none(record)


def interrupted_record(entry: StackEntry, now_ms: int) -> dict[str, Any]:
    """A task cut short (pause past its grace, cancel, another thread failing): it runs again, same attempt, if
    the execution goes on."""
    record: dict[str, Any] = {
        "key": entry.element_key,
        "type": entry.element_type,
        "threadKey": entry.thread_key,
        "path": entry.path if entry.path != entry.thread_key else None,
        "attempts": entry.attempt,
        "status": "interrupted",
        "startedAt": _iso_or_none(entry.started_at_ms),
        "stoppedAt": iso(now_ms),
    }
    if entry.element_type == "task":
        record["attemptHistory"] = [_attempt(entry.attempt, "interrupted", entry.started_at_ms, now_ms)]
    return _without_none(record)


def needs_earlier(record: dict[str, Any]) -> bool:
    """Whether `carried` needs the element's earlier record to complete `record` (all but a task's first start)."""
    return "attemptHistory" in record and not (record["status"] == "running" and record["attempts"] == 1)


def carried(earlier: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """A task's `record` with what its earlier record of the same run holds: the input (an event after the start
    has none of its own) and the attempts before this one, the latest MAX_ATTEMPTS_KEPT. A first attempt that
    starts after an ended run (a loop, the next iteration) begins a new history."""
    attempts = record.get("attemptHistory")
    if attempts is None or earlier is None or not _same_run(earlier, record):
        return record
    history = list(earlier.get("attemptHistory") or [])
    for attempt in attempts:
        last = history[-1] if history else None
        if last is None or last["attempt"] != attempt["attempt"]:
            history.append(attempt)
        elif last["stoppedAt"] is None:
            history[-1] = attempt  # the attempt that was running has ended
        elif last["startedAt"] != attempt["startedAt"]:
            history.append(attempt)  # the same attempt again after it was cut short: a re-run
        # else: the same run of the attempt told of again (a stopped lane's record written twice): it stands
    merged = {**record, "attemptHistory": history[-MAX_ATTEMPTS_KEPT:]}
    if "input" not in record and "input" in earlier:
        merged["input"] = earlier["input"]
    return merged


def _same_run(earlier: dict[str, Any], record: dict[str, Any]) -> bool:
    if earlier.get("type") != "task" or earlier.get("path") != record.get("path"):
        return False
    return not (record["status"] == "running" and record["attempts"] == 1 and earlier.get("status") in FINAL_RECORD)


FINAL_RECORD = ("completed", "failed")
"""Statuses of a record whose run is over: the next start is a new run."""


def _attempt_of(event: ElementEvent) -> dict[str, Any]:
    if event.event == "element-started":
        return _attempt(event.attempt, "running", event.at_ms, None)
    status = "completed" if event.event == "element-completed" else "failed"
    return _attempt(event.attempt, status, event.started_at_ms, event.at_ms, event.error, event.error_type)


def _attempt(
    number: int,
    status: str,
    started_ms: int | None,
    stopped_ms: int | None,
    error: str | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    """One item of `attemptHistory`: every field is there, null when it has no value."""
    duration = None if started_ms is None or stopped_ms is None else max(stopped_ms - started_ms, 0)
    return {
        "attempt": number,
        "status": status,
        "startedAt": _iso_or_none(started_ms),
        "stoppedAt": _iso_or_none(stopped_ms),
        "durationMs": duration,
        "error": error,
        "errorType": error_type,
    }


def element_log(event: ElementEvent) -> LogRecord:
    """An element's log entry: its thread, and the attempt once it is not the first (the element record and
    the definition have the rest)."""
    detail: dict[str, Any] = {"thread": event.thread_key}
    if event.path is not None:
        detail["path"] = event.path
    if event.attempt > 1:
        detail["attempt"] = event.attempt
    if event.error is not None:
        detail["error"] = event.error
    if event.error_type is not None:
        detail["errorType"] = event.error_type
    if event.retry_at_ms is not None:
        detail["retryAt"] = iso(event.retry_at_ms)
    if event.rerun:
        detail["rerun"] = True
    if event.caught is not None:
        detail["caught"] = event.caught
    if event.held:
        detail["held"] = True
    return LogRecord(event.at_ms, event.event, event.element_key, detail)


def transition_log(
    at_ms: int, event: str, caller: Caller, source: str, target: str, reason: str | None, **extra: Any
) -> LogRecord:
    detail: dict[str, Any] = {
        "from": source,
        "to": target,
        "by": caller.by,
        "reason": reason,
        "requestId": caller.request_id,
        "bulk": caller.bulk,
        **extra,
    }
    return LogRecord(at_ms, event, None, _without_none(detail))


def encoded_memory(state: ExecutionState, saved_at: str) -> bytes:
    """The memory blob as a checkpoint stores it: each output once (see `expand_memory_doc`), no empty signals
    (see `seed_memory`). Its length is what the memory limit is checked against."""
    return encode(stored_memory(state.to_stored_memory_doc(saved_at)))


def snapshot_commit(state: ExecutionState, events: list[ElementEvent], now_ms: int) -> Commit:
    """The checkpoint after an element: stack, memory, counters, threads, element records and log. Notes the
    memory's encoded size in `state.memory_bytes`. The stack and memory leave out our own fields where they hold
    their default (`engine/stored.py`); the state hash has no `format` field (absent reads as 1)."""
    saved_at = iso(now_ms)
    memory = encoded_memory(state, saved_at)
    state.memory_bytes = len(memory)
    # no failedNodes: the sum of the thread records' (`queries.status_doc`). completedNodes is that too, but it stays:
    # commit.lua records the commit token (`lastCommit`: a retried write is not applied twice, takeover.lua sees
    # that the state it loaded is the latest) only with a write of execution fields, and every checkpoint must.
    execution: dict[str, Scalar] = {"completedNodes": state.completed_nodes}
    if state.memory.signals:  # their counts, for status reads (`CheckpointWriter.write` clears them once taken)
        counts = {name: len(kept) for name, kept in sorted(state.memory.signals.items()) if kept}
        execution[BUFFERED_SIGNALS] = json.dumps(counts, separators=(",", ":"))
    if state.memory.attributes:  # their copy for the indexes (`CheckpointWriter.write` drops it when unchanged)
        execution[ATTRIBUTES_FIELD] = encode_attributes(state.memory.attributes)
    return Commit(
        execution=execution,
        state={
            "stack": encode(stored_stack(state.to_stack_doc(saved_at))),
            "memory": memory,
            "savedAt": saved_at,
            "active": 1,
        },
        elements={record_field(event.element_key, event.path): element_record(event) for event in events},
        threads={key: progress.to_doc() for key, progress in state.threads.items()},
        log=[element_log(event) for event in events],
    )


def _without_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in doc.items() if value is not None}


def _iso_or_none(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def under_way_records(state: ExecutionState) -> dict[str, dict[str, Any]]:
    """The records of the elements a state taken from a checkpoint has under way (a rewind's, a fork's): running,
    from when they started."""
    records = {}
    for entry in state.stack:
        if entry.started_at_ms is None or entry.fanout is not None:
            continue
        record = {
            "key": entry.element_key,
            "type": entry.element_type,
            "threadKey": entry.thread_key,
            "attempts": entry.attempt,
            "status": "running",
            "startedAt": iso(entry.started_at_ms),
        }
        if entry.path != entry.thread_key:
            record["path"] = entry.path
        records[record_field(entry.element_key, entry.path)] = record
    return records
