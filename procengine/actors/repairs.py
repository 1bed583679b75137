"""Repairs of an execution, same id (issue 20): retry a failed one from what failed, edit a paused one's variables.

Each is a command of the actor's mailbox like pause or resume (`transitions.py`): the actor handles one at a
time, the state is read again from Redis and validated (as a resume does), changed, and written in one fenced
write that expects the status the command applies to, with a log entry naming who, why, the request id and
what changed.

A failed execution's actor is activated for its retry only (`Registry.activate(repair=True)`): the element that
failed it stayed on its stack (`Interpreter._fail`), so a retry is a resume from `failed` with that element
reset: its attempts start again at 1, under a new execution order (a task's handler sees a new run, and a
call-process's child key is new), and the other threads go on from where the failure stopped them, their timers
thawed (frozen when it failed). A parallel or for-each failed by one of its lanes kept its lanes' entries
(`engine/restart.py: restore`): the failed lane's element is reset, the stopped siblings run again, the lanes that
had ended keep their results.
"""

from __future__ import annotations

import json
from typing import Any

from procengine.actors.host import Host
from procengine.actors.messages import Command
from procengine.actors.records import snapshot_commit, transition_log
from procengine.actors.snapshot import load_state
from procengine.actors.transitions import log_refusal
from procengine.api.views import RetryResult, VariablesResult
from procengine.engine.interpreter import CHILD_FAILED, MEMORY_RESERVE
from procengine.engine.lanes import parent as parent_lane
from procengine.engine.merge_patch import applied
from procengine.engine.restart import Restored, restorable, restore, retry_held
from procengine.engine.restart import reset as reset_entry
from procengine.engine.state import ExecutionState, StackEntry
from procengine.errors import (
    CodecError,
    InvalidTransition,
    PayloadTooLarge,
    ProcEngineError,
    StateCorrupted,
    ValidationFailed,
)
from procengine.runtime.clock import iso
from procengine.statuses import Status
from procengine.store.executions import CRASHES, LogRecord

__all__ = ["RETRY_KEY_FIELD", "edit_variables", "renew_cancelled_children", "retried_answer", "retry", "stack_change"]

RETRY_KEY_FIELD = "retryKey:"
"""Execution hash fields `retryKey:<idempotencyKey>` = the retry's answer (JSON): a retry with a key applied already
answers with it, whatever the execution has done since."""


async def _stored_state(actor: Host, message: Command) -> ExecutionState:
    """The state as Redis holds it, validated; a corrupted one is refused (logged) and nothing is changed."""
    stored = await actor.stored()
    try:
        if stored is None:
            raise StateCorrupted("the execution's keys are gone")
        return load_state(stored, actor.process)
    except StateCorrupted as exc:
        why = f"state corrupted: {exc.message}"
        await log_refusal(
            actor.ctx, actor.execution_id, message.caller, message.verb, message.reason, actor.status.value, why
        )
        raise StateCorrupted(f"execution {actor.execution_id} cannot be repaired: {exc.message}") from None


def _patch(actor: Host, state: ExecutionState, patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a merge patch to the thread variables, checked against the limits of a start: the names (with those
    the definition writes) within --max-variables (422), the memory within --max-snapshot-bytes (413). What
    changed, for the log."""
    settings = actor.ctx.settings
    before = state.memory.variables
    after, changes = applied(before, patch)
    held = len(actor.process.variables_written | after.keys())
    if held > settings.max_variables and len(after) > len(before):
        raise ValidationFailed(
            "too many variables",
            [
                f"variables: {len(after)} after the patch, with those the definition writes {held}; "
                f"at most {settings.max_variables} (--max-variables)"
            ],
        )
    state.memory.variables = after
    return changes


def _check_memory(actor: Host, state: ExecutionState) -> None:
    """After `snapshot_commit` measured it: 413 if the memory no longer fits (with the reserve for a failure)."""
    limit = actor.ctx.settings.max_snapshot_bytes
    if state.memory_bytes > limit - MEMORY_RESERVE:
        raise PayloadTooLarge(
            f"variables do not fit in the execution's memory: its snapshot would take {state.memory_bytes} bytes, "
            f"of the {limit} it may take (--max-snapshot-bytes)"
        )


def _failed_entries(actor: Host, state: ExecutionState, restored: Restored) -> list[StackEntry]:
    """The elements to start again: per failed thread, its own pending element (the one that failed it); for a
    fan-out that failed with its lanes kept, the element that failed its lane, its lanes put back (`restore`, into
    `restored`); a fan-out failed before lanes were kept runs again whole; for a thread failed while a fan-out of
    it was under way (the crash quarantine), the element the failure names. StateCorrupted if a failed thread has
    none."""
    error = json.loads(actor.fields.get("error") or "{}")
    named = error.get("element") if isinstance(error, dict) else None
    found: list[StackEntry] = []
    for key, progress in state.threads.items():
        if progress.status != "failed":
            continue
        own = state.entry(key)
        if own is not None and restorable(own):
            before = len(restored.failed)
            restore(state, own, restored)
            mine = restored.failed[before:]
        elif own is not None and own.fanout is None:
            mine = [own]
        else:
            mine = [e for e in state.stack if e.thread_key == key and e.element_key == named and e.fanout is None]
        if not mine:
            raise StateCorrupted(f"thread {key!r} failed, and no element of it is on the stack to go on from")
        found += mine
    return found


async def retry(actor: Host, message: Command) -> RetryResult:
    """A failed execution goes on from the elements that failed, their attempts reset, with the variables patched
    first if asked; running again, its retention undone (in the same write: `CheckpointWriter.write`)."""
    ctx = actor.ctx
    state = await _stored_state(actor, message)
    stack_before = {entry.path: entry.to_doc() for entry in state.stack}
    restored = Restored()
    try:
        entries = _failed_entries(actor, state, restored)
        if not entries and not state.stack:
            raise StateCorrupted("its stack is empty")
    except StateCorrupted as exc:
        why = f"nothing to go on from: {exc.message}"
        await log_refusal(ctx, actor.execution_id, message.caller, "retry", message.reason, actor.status.value, why)
        raise StateCorrupted(f"execution {actor.execution_id} cannot be retried: {why}") from None
    changes = None
    if message.patch is not None:  # checked before anything changes anywhere (a child retried below)
        changes = _patch(actor, state, message.patch)
        try:
            snapshot_commit(state, [], ctx.clock.now_ms())
        except CodecError as exc:
            raise ValidationFailed("variables cannot be stored", [f"variables: {exc.message}"]) from None
        _check_memory(actor, state)
    reset: list[dict[str, Any]] = []
    retried_children: list[int] = []
    for entry in entries:
        item: dict[str, Any] = {"element": entry.element_key, "thread": entry.thread_key, "attempts": entry.attempt}
        if entry.path != entry.thread_key:
            item["path"] = entry.path
        child, was_held = entry.child_id, entry.held is not None
        reset_entry(state, entry)
        if child is not None:
            item["childExecutionID"] = child
            ended = await ctx.children.ended(child)
            if ended is not None and ended.status == "failed":
                await _retry_child(actor, message, child)
                retried_children.append(child)
                item["child"] = "retried"
            elif ended is None:  # running or paused again (retried on its own): the call waits for it
                item["child"] = "waited for"
            elif ended.status == "completed" and _failed_type(state, entry) == CHILD_FAILED:
                item["child"] = "taken"  # it failed the call, then completed (retried on its own): its result
            else:  # completed, cancelled or gone: a new child, under a new key (a new execution order)
                entry.child_id = None
                item["child"] = "started again"
        reset.append(item)
        progress = state.threads[entry.thread_key]
        progress.status = "running"
        if not was_held:  # a held failure was not counted as failed
            progress.failed_nodes = max(0, progress.failed_nodes - 1)
    for fanout in restored.fanouts:  # each failed with its lane: it goes on from where its lanes stood
        item = {"element": fanout.element_key, "thread": fanout.thread_key, "attempts": fanout.attempt}
        if fanout.path != fanout.thread_key:
            item["path"] = fanout.path
        item["lanesResumed"] = [lane for lane in restored.resumed if parent_lane(lane) == fanout.path]
        reset.append(item)
        progress = state.threads[fanout.thread_key]
        progress.failed_nodes = max(0, progress.failed_nodes - 1)
    reset += retry_held(state)  # held when another thread failed the execution: retried too
    reset += await renew_cancelled_children(actor, state, entries)
    now = ctx.clock.now_ms()
    actor.interpreter.thaw_timers(state, now)  # frozen when it failed (finishing.finish)
    commit = snapshot_commit(state, [], now)
    answer = RetryResult(
        executionID=actor.execution_id,
        retriedAt=iso(now),
        pendingNodes=len(state.stack),
        retried=[item["element"] for item in reset],
        retriedChildren=retried_children,
    )
    commit.execution.update(status=Status.RUNNING.value, stoppedAt="", error="", retriedAt=iso(now))
    commit.execution[CRASHES] = 0  # a quarantined execution retried gets its crash allowance back
    commit.execution["retries"] = int(actor.fields.get("retries") or 0) + 1
    if message.retry_key is not None:
        commit.execution[f"{RETRY_KEY_FIELD}{message.retry_key}"] = answer.model_dump_json()
    extra: dict[str, Any] = {"reset": reset, "stack": stack_change(stack_before, state)}
    if changes is not None:
        extra["variables"] = changes
    if message.retry_key is not None:
        extra["idempotencyKey"] = message.retry_key
    commit.log.append(transition_log(now, "retried", message.caller, "failed", "running", message.reason, **extra))
    await ctx.store.activate(actor.execution_id)  # in the active set first: a node that dies next is adopted from
    await actor.write(commit, expect=Status.FAILED, not_after_ms=message.not_after_ms)
    await ctx.store.activate(actor.execution_id)  # and after: a reconcile that read `failed` before may have removed it
    actor.state = state
    actor.corrupted = False
    actor.status = Status.RUNNING
    await actor.announce()
    actor.lanes.start()
    return answer


async def renew_cancelled_children(actor: Host, state: ExecutionState, done: list[StackEntry]) -> list[dict[str, Any]]:
    """A failed execution's end cancelled the children its other lanes waited for (`finishing`): going on, each of
    those calls starts a new child (a new execution order, so a new child key) instead of failing at once on the
    cancelled one. `done`: entries already reset. What changed, for the log."""
    renewed: list[dict[str, Any]] = []
    for entry in state.stack:
        if entry.child_id is None or any(entry is other for other in done):
            continue
        ended = await actor.ctx.children.ended(entry.child_id)
        if ended is None or ended.status != "cancelled":
            continue
        item = {"element": entry.element_key, "thread": entry.thread_key, "attempts": entry.attempt}
        if entry.path != entry.thread_key:
            item["path"] = entry.path
        renewed.append({**item, "childExecutionID": entry.child_id, "child": "started again"})
        entry.child_id = entry.started_at_ms = None
        entry.execution_order = state.next_order
        state.next_order += 1
    return renewed


def stack_change(before: dict[str, dict[str, Any]], state: ExecutionState) -> dict[str, list[dict[str, Any]]]:
    """The audit's `stack`: the entries (by lane) that a repair changed, took off or put on, as they were before
    and as they are after (`before`: the stack's entries by lane, read before the repair)."""
    after = {entry.path: entry.to_doc() for entry in state.stack}
    changed = [lane for lane in {**before, **after} if before.get(lane) != after.get(lane)]
    return {
        "before": [before[lane] for lane in changed if lane in before],
        "after": [after[lane] for lane in changed if lane in after],
    }


def _failed_type(state: ExecutionState, entry: StackEntry) -> str | None:
    """The error type the element failed with, as its node output keeps it."""
    output = state.memory.node_outputs.get(entry.element_key)
    kind = output.get("type") if isinstance(output, dict) else None
    return kind if isinstance(kind, str) else None


async def _retry_child(actor: Host, message: Command, child_id: int) -> None:
    """Retry the failed child first: if it is refused, so is its parent's retry (nothing written for the parent)."""
    try:
        await actor.ctx.children.retry(actor.tenant, child_id, actor.execution_id, message.reason)
    except ProcEngineError as exc:
        if exc.status >= 500:
            raise
        why = f"its child execution {child_id} cannot be retried: {exc.message}"
        await log_refusal(
            actor.ctx, actor.execution_id, message.caller, "retry", message.reason, actor.status.value, why
        )
        raise InvalidTransition(f"cannot retry execution {actor.execution_id}: {why}", actor.status.value) from None


def retried_answer(fields: dict[str, str], key: str) -> RetryResult | None:
    """The answer of the retry with idempotencyKey `key`, if it was applied."""
    stored = fields.get(f"{RETRY_KEY_FIELD}{key}")
    return RetryResult.model_validate_json(stored) if stored else None


async def edit_variables(actor: Host, message: Command) -> VariablesResult:
    """A paused execution's variables, merge-patched; it stays paused (resume goes on with them)."""
    ctx = actor.ctx
    state = await _stored_state(actor, message)
    patch = message.patch or {}
    try:
        changes = _patch(actor, state, patch)
        now = ctx.clock.now_ms()
        commit = snapshot_commit(state, [], now)
    except CodecError as exc:
        raise ValidationFailed("variables cannot be stored", [f"variables: {exc.message}"]) from None
    _check_memory(actor, state)
    changed = sorted({*changes["before"], *changes["after"]})
    if not changed:  # nothing to write (nor to log): the variables are as the patch asks already
        return VariablesResult(executionID=actor.execution_id, variables=state.memory.variables, changed=[])
    detail: dict[str, Any] = {"by": message.caller.by, "requestId": message.caller.request_id, "variables": changes}
    if message.caller.bulk is not None:
        detail["bulk"] = message.caller.bulk
    if message.reason is not None:
        detail["reason"] = message.reason
    commit.log.append(LogRecord(now, "variables-changed", None, detail))
    await actor.write(commit, expect=Status.PAUSED, not_after_ms=message.not_after_ms)
    actor.state = state
    actor.corrupted = False
    return VariablesResult(executionID=actor.execution_id, variables=state.memory.variables, changed=changed)


# Public names for the step controls (`steps.py`) and rewind (`rewind.py`), which read, patch and check the state as a
# repair does.
stored_state = _stored_state
apply_patch = _patch
check_memory = _check_memory
