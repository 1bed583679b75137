"""Rebuilding an execution's state from Redis, refusing anything that cannot be resumed from."""

from __future__ import annotations

from collections.abc import Mapping

from procengine.engine.compiled import CompiledProcess
from procengine.engine.state import ExecutionState, ThreadProgress, state_from_docs
from procengine.errors import CodecError, StateCorrupted
from procengine.statuses import Status
from procengine.store.codec import check_format, decode
from procengine.store.executions import StoredExecution
from procengine.store.stored_records import thread_doc


def load_state(stored: StoredExecution, process: CompiledProcess) -> ExecutionState:
    """The stored stack and memory, validated against the definition; StateCorrupted if unusable."""
    try:
        check_format(stored.state.get("format"))
        stack_blob = stored.state.get("stack")
        memory_blob = stored.state.get("memory")
        if not stack_blob:
            raise StateCorrupted("the stack snapshot is missing or empty")
        if not memory_blob:
            raise StateCorrupted("the memory snapshot is missing or empty")
        threads: dict[str, ThreadProgress] = {}
        for thread in process.threads:
            raw = stored.threads.get(thread.key)
            if raw is None:
                raise StateCorrupted(f"the record of thread {thread.key!r} is missing")
            threads[thread.key] = ThreadProgress.from_doc(thread_doc(thread.key, decode(raw)))
        # our fields left out at their default (engine/stored.py) are read as such by `state_from_docs`
        stack_doc = _decoded("stack", stack_blob)
        memory_doc = _decoded("memory", memory_blob)
        state = state_from_docs(stack_doc, memory_doc, threads)
        state.memory_bytes = len(memory_blob)
    except CodecError as exc:
        raise StateCorrupted(exc.message) from None
    for entry in state.stack:
        if process.thread_of.get(entry.element_key) != entry.thread_key:
            raise StateCorrupted(f"the stack names element {entry.element_key!r}, not in thread {entry.thread_key!r}")
    unfinished = [key for key, progress in threads.items() if progress.status == "running"]
    if unfinished and not state.stack:
        raise StateCorrupted(f"the stack is empty but threads {unfinished} have not finished")
    return state


NUMBER_FIELDS = ("epoch", "processID", "processVersion")


def check_fields(execution_id: int, fields: Mapping[str, str]) -> Status:
    """The status in an execution's hash, once the fields the engine works with are readable; StateCorrupted naming
    the field if not (a hash edited by hand: a status procengine does not know, an epoch that is not a number, a
    field deleted)."""
    raw = fields.get("status", "")
    try:
        status = Status(raw)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise StateCorrupted(
            f"execution {execution_id}: its status {raw!r} is not one procengine knows ({known})"
        ) from None
    for name in NUMBER_FIELDS:
        value = fields.get(name)
        if value is None or not (value.isascii() and value.isdigit()):
            what = "is missing" if value is None else f"is {value!r}, not a number"
            raise StateCorrupted(f"execution {execution_id}: its field {name} {what}")
    if not fields.get("tenant"):
        raise StateCorrupted(f"execution {execution_id}: its field tenant is missing")
    return status


def _decoded(name: str, blob: bytes) -> object:
    try:
        return decode(blob)
    except CodecError as exc:
        raise CodecError(f"{name}: {exc.message}") from None
