"""What each request does to an execution: pause, resume, cancel and signal (the commands of its mailbox), the
repairs (retry a failed execution, edit a paused one's variables: `repairs.py`), and drain (its node shutting
down). The actor calls one at a time, so they never race each other; each checks what it
can, changes the state, and writes the change in one fenced write before it answers.

Which statuses a command may start from is `ALLOWED_FROM`; the actor refuses the others before calling in.
"""

from __future__ import annotations

import json
from typing import Any, Final

from procengine.actors.context import ActorContext
from procengine.actors.finishing import ended_as_child_or_parent, record_interrupted
from procengine.actors.host import Host
from procengine.actors.messages import Command
from procengine.actors.records import snapshot_commit, transition_log
from procengine.actors.snapshot import load_state
from procengine.api.service import Caller
from procengine.api.views import CancelResult, PauseResult, ResumeResult, SignalResult
from procengine.engine.restart import retry_held
from procengine.engine.waits import signal_names
from procengine.errors import InvalidTransition, LimitExceeded, PayloadTooLarge, StateCorrupted, ValidationFailed
from procengine.runtime.clock import iso, parse_iso
from procengine.statuses import Status
from procengine.store.executions import PAUSE_REASON, PAUSED_BY, PAUSED_BY_BULK, Commit, LogRecord, Scalar

__all__ = [
    "ALLOWED_FROM",
    "SIGNAL_KEY_FIELD",
    "TRANSITION_TARGETS",
    "cancel",
    "drain",
    "log_refusal",
    "pause",
    "resume",
    "signal",
    "write_pause",
]

TRANSITION_TARGETS: Final = {
    "pause": "paused",
    "resume": "running",
    "cancel": "cancelled",
    "retry": "running",
    "edit": "paused",
    "step": "paused",
    "run-now": "running",
    "policy": "policy",
    "rewind": "paused",
    "breakpoints": "breakpoints",
    "advance": "paused",
    "migrate": "migrate",
}
"""The status each control command asks for (a `refused` entry names it as `to`; an edit keeps it paused)."""
ALLOWED_FROM: Final = {
    "pause": (Status.RUNNING,),
    "resume": (Status.PAUSED,),
    "cancel": (Status.RUNNING, Status.PAUSED),
    "retry": (Status.FAILED,),
    "edit": (Status.PAUSED,),
    "step": (Status.PAUSED, Status.FAILED),
    "rewind": (Status.PAUSED, Status.FAILED, Status.CANCELLED),
    "breakpoints": (Status.RUNNING, Status.PAUSED),
    "advance": (Status.PAUSED,),
    "run-now": (Status.RUNNING,),
    "policy": (Status.RUNNING, Status.PAUSED),
    "migrate": (Status.PAUSED, Status.FAILED),
}
"""The statuses each control command applies to; from any other it is refused (and the refusal logged)."""
SIGNAL_KEY_FIELD = "signalKey:"
"""Execution hash fields `signalKey:<Idempotency-Key>` = when a signal with that key was delivered."""


async def log_refusal(
    ctx: ActorContext, execution_id: int, caller: Caller, verb: str, reason: str | None, status: str, why: str
) -> None:
    """Write a `refused` entry; it changes nothing but the log, so it needs no epoch."""
    now = ctx.clock.now_ms()
    entry = transition_log(
        now, "refused", caller, status, TRANSITION_TARGETS.get(verb, verb), reason, command=verb, why=why
    )
    await ctx.store.commit(execution_id, Commit(log=[entry]), epoch=None, expect="")


async def pause(actor: Host, message: Command) -> PauseResult | None:
    """Freeze the execution where it is; None if it ended (completed or failed) while its runners stopped."""
    lanes = actor.lanes
    inflight = lanes.tasks_in_flight
    await lanes.stop(grace_s=actor.ctx.settings.pause_grace_ms / 1000)
    if actor.writer.crash is not None:
        raise actor.writer.crash
    if await actor.settle():  # the last element finished (or failed) while pausing
        return None
    return await write_pause(actor, message.caller, message.reason, message.not_after_ms, inflight)


async def write_pause(
    actor: Host,
    caller: Caller,
    reason: str | None,
    not_after_ms: int | None,
    inflight: int,
    *,
    first_logs: list[LogRecord] | None = None,
    **extra: Any,
) -> PauseResult:
    """The pause itself, once the runners are stopped: timers frozen, the paused write (who and why, for the
    status's blockedOn), the children it waits for paused with it. `extra`: more for the `paused` log entry;
    `first_logs`: entries written before it, in the same write (a breakpoint's)."""
    lanes = actor.lanes
    now = actor.ctx.clock.now_ms()
    state = actor.state
    actor.interpreter.freeze_timers(state, now)
    first = state.stack[0] if state.stack else None
    state.paused_at_node = first.element_id if first else None
    commit = snapshot_commit(state, [], now)
    # who paused it and why, for the status's blockedOn (the log has them too, but a status read is O(lanes))
    pause = {PAUSED_BY: caller.by, PAUSE_REASON: reason or "", PAUSED_BY_BULK: caller.bulk or ""}
    commit.execution.update(status=Status.PAUSED.value, pausedAt=iso(now), **pause)
    actor.writer.progressed(commit)
    interrupted = record_interrupted(actor, commit, now)
    commit.log.extend(first_logs or [])
    commit.log.append(
        transition_log(now, "paused", caller, "running", "paused", reason, inflight=inflight, **interrupted, **extra)
    )
    # the children to pause with it, noted in the same write, so that its resume resumes them (and not one
    # an operator had paused on its own), even if this node stops between the two
    cascade = await actor.ctx.children.running(lanes.waited_children())
    if cascade:
        commit.execution["pausedChildren"] = json.dumps(cascade)
    await actor.write(commit, expect=Status.RUNNING, not_after_ms=not_after_ms)
    actor.status = Status.PAUSED
    await actor.announce()
    if cascade:
        await actor.ctx.children.control(actor.tenant, "pause", cascade, actor.execution_id, reason)
    return PauseResult(
        executionID=actor.execution_id,
        completedNodes=state.completed_nodes,
        totalNodes=actor.process.total_nodes,
        pausedAt=iso(now),
        inflightNodes=inflight,
    )


async def resume(actor: Host, message: Command) -> ResumeResult:
    """Go on from the stored snapshot (read again and validated: a corrupted one is refused)."""
    ctx = actor.ctx
    stored = await actor.stored()
    try:
        if stored is None:
            raise StateCorrupted("the execution's keys are gone")
        state = load_state(stored, actor.process)
    except StateCorrupted as exc:
        await log_refusal(
            ctx,
            actor.execution_id,
            message.caller,
            "resume",
            message.reason,
            actor.status.value,
            f"state corrupted: {exc.message}",
        )
        raise StateCorrupted(f"execution {actor.execution_id} cannot be resumed: {exc.message}") from None
    now = ctx.clock.now_ms()
    retried = retry_held(state)  # a failure held on the stack (onExhausted: pause): resume means retry it
    actor.interpreter.thaw_timers(state, now)
    state.paused_at_node = None
    total_paused = _paused_ms_until(actor.fields, now)
    paused_ms = total_paused - int(actor.fields.get("pausedDurationMs") or 0)
    commit = snapshot_commit(state, [], now)
    commit.execution.update(status=Status.RUNNING.value, resumedAt=iso(now), pausedAt="", pausedDurationMs=total_paused)
    commit.execution.update({PAUSED_BY: "", PAUSE_REASON: ""})
    extra = {"retried": retried} if retried else {}
    commit.log.append(transition_log(now, "resumed", message.caller, "paused", "running", message.reason, **extra))
    paused_children = json.loads(actor.fields.get("pausedChildren") or "[]")
    if paused_children:
        commit.execution["pausedChildren"] = ""
    await actor.write(commit, expect=Status.PAUSED, not_after_ms=message.not_after_ms)
    actor.state = state
    actor.corrupted = False  # the stored snapshot was read and validated just now
    actor.status = Status.RUNNING
    await actor.announce()
    if paused_children:  # the children its pause paused (not one paused on its own)
        await ctx.children.control(actor.tenant, "resume", paused_children, actor.execution_id, message.reason)
    actor.lanes.start()
    return ResumeResult(
        executionID=actor.execution_id,
        resumedAt=iso(now),
        pendingNodes=len(state.stack),
        pausedDurationMs=paused_ms,
    )


async def cancel(actor: Host, message: Command) -> CancelResult:
    """End the execution as `cancelled`, from running or paused: its tasks are cut short, its children cancelled."""
    source = actor.status
    ctx = actor.ctx
    await actor.lanes.stop(grace_s=0)
    now = ctx.clock.now_ms()
    for progress in actor.state.threads.values():
        if progress.status == "running":
            progress.status = "cancelled"
    stopped = iso(now)
    execution: dict[str, Scalar] = {"status": Status.CANCELLED.value, "stoppedAt": stopped, "cancelledAt": stopped}
    if source is Status.PAUSED:  # the pause ends here: no longer paused, and the pause counts in the total
        execution.update(pausedAt="", pausedDurationMs=_paused_ms_until(actor.fields, now))
    commit = Commit(
        expire_ms=ctx.settings.retention_ms(actor.tenant),
        execution=execution,
        state={"active": 0, "savedAt": iso(now)},
        state_delete=["stack", "memory"],
        threads={} if actor.corrupted else {key: p.to_doc() for key, p in actor.state.threads.items()},
    )
    paused_at = actor.fields.get("pausedAt") if source is Status.PAUSED else None
    frozen_at = parse_iso(paused_at) if paused_at else None
    interrupted = record_interrupted(actor, commit, now, ended=not actor.corrupted, frozen_at=frozen_at)
    commit.log.append(
        transition_log(now, "cancelled", message.caller, source.value, "cancelled", message.reason, **interrupted)
    )
    await actor.write(commit, expect=source, not_after_ms=message.not_after_ms)
    actor.status = Status.CANCELLED
    await actor.announce()
    ctx.metrics.finished.labels(actor.process.definition.key, Status.CANCELLED.value).inc()
    await ctx.store.deactivate(actor.execution_id)
    await ended_as_child_or_parent(actor, message.reason)
    return CancelResult(executionID=actor.execution_id, cancelledAt=iso(now))


async def signal(actor: Host, message: Command) -> SignalResult:
    """Keep a signal for the wait-signal elements (once per Idempotency-Key), and wake the lanes."""
    execution_id = actor.execution_id
    if actor.status not in (Status.RUNNING, Status.PAUSED):
        raise InvalidTransition(f"execution {execution_id} is {actor.status.value}", actor.status.value)
    takeable = signal_names(actor.process)
    if message.signal not in takeable:
        # no wait-signal of its definition could ever take it: kept, it would wait (and count) for ever
        waits_for = ", ".join(repr(name) for name in takeable) or "no signal"
        definition = actor.process.definition.key
        problem = f"signal: {message.signal!r} is not a signal this execution waits for (it waits for {waits_for})"
        raise ValidationFailed(
            f"execution {execution_id} cannot take signal {message.signal!r}: its definition {definition!r} waits "
            f"for {waits_for}; signal not stored",
            [problem],
        )
    if actor.corrupted:
        raise StateCorrupted(f"execution {execution_id}: its snapshot cannot be read; signal not stored")
    delivered = None if message.signal_key is None else f"{SIGNAL_KEY_FIELD}{message.signal_key}"
    if delivered is not None and delivered in actor.fields:  # a retry of a signal delivered already: once
        return SignalResult(executionID=execution_id, signal=message.signal)
    state = actor.state
    waiting = sum(len(kept) for kept in state.memory.signals.values())
    limit = actor.ctx.settings.max_pending_signals
    if waiting >= limit:
        raise ValidationFailed(
            f"execution {execution_id} has {waiting} signals waiting for a wait-signal to take them; signal not stored",
            [f"at most {limit} signals may wait (--max-pending-signals)"],
        )
    try:  # encodable: the engine checked
        actor.interpreter.signal_arrived(state, message.signal, message.payload)
    except LimitExceeded as exc:
        raise PayloadTooLarge(f"execution {execution_id}: {exc}; signal not stored") from None
    now = actor.ctx.clock.now_ms()
    commit = snapshot_commit(state, [], now)
    if delivered is not None:
        commit.execution[delivered] = now
    detail: dict[str, Any] = {"signal": message.signal, "by": message.caller.by, "requestId": message.caller.request_id}
    if message.caller.bulk is not None:
        detail["bulk"] = message.caller.bulk
    if message.signal_key is not None:
        detail["idempotencyKey"] = message.signal_key
    commit.log.append(LogRecord(now, "signal-received", None, detail))
    await actor.write(commit, expect=actor.status, not_after_ms=message.not_after_ms)
    actor.lanes.wake_all()
    return SignalResult(executionID=execution_id, signal=message.signal)


async def drain(actor: Host) -> None:
    """The node is shutting down: no new element starts, running tasks get the pause grace to finish (then are
    cut short, to run again where the execution is adopted), and the state is checkpointed. The status stays:
    a running execution is adopted by another node once this node's heartbeat is gone."""
    if actor.status is not Status.RUNNING:
        return
    await actor.lanes.stop(grace_s=actor.ctx.settings.pause_grace_ms / 1000)
    if await actor.settle():  # it finished (or failed) while draining
        return
    now = actor.ctx.clock.now_ms()
    commit = snapshot_commit(actor.state, [], now)
    record_interrupted(actor, commit, now)
    actor.writer.progressed(commit)  # this node stops by choice: not a crash
    await actor.write(commit, expect=Status.RUNNING)


def _paused_ms_until(fields: dict[str, str], now: int) -> int:
    """`pausedDurationMs` once the current pause ends at `now`: the earlier pauses and this one."""
    paused_at = fields.get("pausedAt")
    paused_ms = max(now - parse_iso(paused_at), 0) if paused_at else 0
    return int(fields.get("pausedDurationMs") or 0) + paused_ms
