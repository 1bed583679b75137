"""Rewind in place (issue 22, point 2): a paused, failed or cancelled execution goes back to one of its kept
checkpoints, same id, and is paused there; resume goes on from it.

A command of the actor's mailbox like the repairs (`repairs.py`): the checkpoint is read from the execution's
history (`store/history.py`) and validated against the definition as a resume validates a snapshot; its variables
are merge-patched if asked; then one fenced write, expecting the status the execution has, puts back its stack,
memory and thread records, makes it paused (timers frozen as a pause freezes them), moves it in the tenant's
indexes and undoes the retention a final write started, with a `rewound` log entry naming the checkpoint, who, why
and what changed. The log keeps everything before; elements after the checkpoint run again on resume (a task found
started in it is re-run: tasks are at-least-once, as after a crash). The element records of the elements under
way in the checkpoint (a wait, a delay, a task) read `running` again from when they started; those a paused
execution had under way and the checkpoint has not read `interrupted` from the pause (`_cut_short`); the others keep
their latest run until they run again. Children started after the checkpoint are left as they are (a call-process
rewound to before its child started starts a new child when it runs again).
"""

from __future__ import annotations

from typing import Any

from procengine.actors.host import Host
from procengine.actors.messages import Command
from procengine.actors.records import (
    interrupted_record,
    record_field,
    snapshot_commit,
    transition_log,
    under_way_records,
)
from procengine.actors.repairs import apply_patch, check_memory, stack_change
from procengine.actors.snapshot import load_state
from procengine.actors.transitions import log_refusal
from procengine.api.views import RewindResult
from procengine.engine.diff import mapping_diff
from procengine.errors import CodecError, NotFound, StateCorrupted, ValidationFailed
from procengine.runtime.clock import iso, parse_iso
from procengine.statuses import Status
from procengine.store.executions import CRASHES, PAUSE_REASON, PAUSED_BY, StoredExecution
from procengine.store.history import HistoryStore

__all__ = ["rewind"]


async def rewind(actor: Host, message: Command) -> RewindResult:
    ctx = actor.ctx
    seq = message.checkpoint
    assert seq is not None
    source = actor.status
    kept = await HistoryStore(ctx.store.redis, ctx.store.keys).kept(actor.execution_id)
    found = next((checkpoint for checkpoint in kept if checkpoint.seq == seq), None)
    if found is None:
        why = f"checkpoint {seq} is not kept"
        await log_refusal(ctx, actor.execution_id, message.caller, "rewind", message.reason, source.value, why)
        raise NotFound(f"checkpoint {seq} of execution {actor.execution_id} is not kept (GET …/checkpoints)")
    snapshot = StoredExecution(
        fields=actor.fields, state={"stack": found.stack, "memory": found.memory}, threads=found.threads
    )
    try:
        state = load_state(snapshot, actor.process)
    except StateCorrupted as exc:
        why = f"checkpoint {seq} cannot be used: {exc.message}"
        await log_refusal(ctx, actor.execution_id, message.caller, "rewind", message.reason, source.value, why)
        raise StateCorrupted(f"execution {actor.execution_id} cannot be rewound: {why}") from None
    before: dict[str, Any] = {} if actor.corrupted else dict(actor.state.memory.variables)
    stack_before = {} if actor.corrupted else {entry.path: entry.to_doc() for entry in actor.state.stack}
    patched = None
    if message.patch is not None:
        patched = apply_patch(actor, state, message.patch)
    now = ctx.clock.now_ms()
    actor.interpreter.freeze_timers(state, now)  # paused there: a timer it had keeps what was left of it
    first = state.stack[0] if state.stack else None
    state.paused_at_node = first.element_id if first else None
    try:
        commit = snapshot_commit(state, [], now)
    except CodecError as exc:
        raise ValidationFailed("variables cannot be stored", [f"variables: {exc.message}"]) from None
    check_memory(actor, state)
    variables = mapping_diff(before, state.memory.variables)
    commit.elements.update(under_way_records(state))
    cut = _cut_short(actor, source, commit.elements)
    commit.execution.update(status=Status.PAUSED.value, pausedAt=iso(now), stoppedAt="", error="")
    commit.execution.update({PAUSED_BY: message.caller.by, PAUSE_REASON: message.reason or "", CRASHES: 0})
    if actor.fields.get("pausedChildren"):
        commit.execution["pausedChildren"] = ""  # its resume resumes no child a pause before this one paused
    extra: dict[str, Any] = {"checkpoint": seq, "variables": variables, "stack": stack_change(stack_before, state)}
    if patched is not None:
        extra["patch"] = patched
    if cut:
        extra["interrupted"] = cut
    commit.log.append(transition_log(now, "rewound", message.caller, source.value, "paused", message.reason, **extra))
    if source.is_final:
        await ctx.store.activate(actor.execution_id)  # live again: in the active and owned sets before the write
    await actor.write(commit, expect=source, not_after_ms=message.not_after_ms)
    actor.state = state
    actor.corrupted = False
    actor.status = Status.PAUSED
    await actor.announce()
    return RewindResult(
        executionID=actor.execution_id,
        checkpoint=seq,
        rewoundFrom=source.value,
        rewoundAt=iso(now),
        pendingNodes=len(state.stack),
        variables=variables,
    )


def _cut_short(actor: Host, source: Status, records: dict[str, Any]) -> list[str]:
    """The elements a paused execution had under way (a delay, a wait: a pause leaves their records `running`) that
    the checkpoint does not have under way: the rewind ends their run, so their records say `interrupted` from the
    pause, as a cancel of the paused execution would (a failed or cancelled one's final write did that already).
    Marked in `records`; their keys."""
    paused_at = actor.fields.get("pausedAt")
    if source is not Status.PAUSED or actor.corrupted or not paused_at:
        return []
    stopped = parse_iso(paused_at)
    cut = []
    for entry in actor.state.stack:
        field = record_field(entry.element_key, entry.path)
        if entry.started_at_ms is not None and field not in records:
            records[field] = interrupted_record(entry, stopped)
            cut.append(entry.element_key)
    return cut
