"""Step controls (issue 20, point 3): an operator acts on one element of a paused or failed execution's stack.

    retry     the element starts again: attempt 1, a new execution order, no timer, no held failure
    move      a lane's pending element is replaced by a fresh entry for another element of its thread or branch
    skip      recorded `skipped`; its `next` is followed (an output given is stored as if it had run)
    complete  a task, as if its handler had returned the output given (the interpreter's success path)
    fail      the element fails with the error and type given (the interpreter's failure path: a catch takes it)

Each is a command of the actor's mailbox (verb `step`), handled like a repair (`repairs.py`): the state is read
again from Redis and validated, changed by the interpreter, and written in one fenced write that expects the
status it started from, with one log entry naming who, why, the request id and the stack before and after.

A paused execution stays paused; a failed one becomes paused at its new position (its retention undone in the
same write, back in the active set): resume goes on from there. A `fail` that no catch clause takes ends the
execution `failed` (from paused too): the operator asked for that failure, so it is not held.
"""

from __future__ import annotations

import json
from typing import Any

from procengine.actors.finishing import ended_as_child_or_parent
from procengine.actors.host import Host
from procengine.actors.messages import Command, StepOrder
from procengine.actors.records import Failure, interrupted_record, record_field, snapshot_commit
from procengine.actors.repairs import renew_cancelled_children, stored_state
from procengine.api.views import PendingElement, StepResult
from procengine.engine import lanes
from procengine.engine.definitions import TaskElement
from procengine.engine.outcomes import ElementEvent, ElementFailed, LaneEnded, Outcome
from procengine.engine.policy import retry_policy
from procengine.engine.restart import reset
from procengine.engine.state import ExecutionState, StackEntry
from procengine.engine.steps import same_list
from procengine.errors import (
    InvalidTransition,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    StateCorrupted,
    ValidationFailed,
)
from procengine.runtime.clock import iso, parse_iso
from procengine.statuses import Status
from procengine.store.executions import CRASHES, PAUSE_REASON, PAUSED_BY, Commit, LogRecord

__all__ = ["apply", "change_policy", "find_entry", "run_now"]

AUDIT_EVENTS = {
    "retry": "element-retried",
    "skip": "element-skipped",
    "complete": "element-completed",
    "fail": "element-failed",
    "move": "lane-moved",
    "run-now": "element-run-now",
    "policy": "element-policy-changed",
}
"""The log entry each step control writes (for complete and fail: the element's own entry, with the operator's)."""


def find_entry(state: ExecutionState, known: set[str], order: StepOrder, execution_id: int) -> StackEntry:
    """The stack entry the order names: 404 for an element the definition lacks or that is not on the stack
    (in the lane named), 422 when it stands in several lanes and none is named (the lanes listed)."""
    if order.element not in known:
        raise NotFound(f"execution {execution_id} has no element {order.element!r} in its definition")
    found = [entry for entry in state.stack if entry.element_key == order.element]
    pending = ", ".join(f"{e.element_key} ({e.path})" for e in state.stack) or "none"
    if order.lane is not None:
        found = [entry for entry in found if entry.path == order.lane]
        if not found:
            raise NotFound(
                f"element {order.element!r} is not pending in lane {order.lane!r} of execution {execution_id} "
                f"(pending: {pending})"
            )
    if not found:
        raise NotFound(
            f"element {order.element!r} is not on the stack of execution {execution_id} (pending: {pending})"
        )
    if len(found) > 1:
        where = ", ".join(entry.path for entry in found)
        raise ValidationFailed(
            f"element {order.element!r} stands in {len(found)} lanes: name one",
            [f"lane: element {order.element!r} stands in lanes {where}; give one of them as lane"],
        )
    return found[0]


async def apply(actor: Host, message: Command) -> StepResult:
    order = message.step
    assert order is not None
    source = actor.status
    state = await stored_state(actor, message)
    if order.action == "move":
        entry = _lane_entry(actor, state, order)
    else:
        entry = find_entry(state, set(actor.process.elements), order, actor.execution_id)
    await _check_applies(actor, state, entry, order)
    now = actor.ctx.clock.now_ms()
    thread = entry.thread_key
    before = _thread_stack(state, thread)
    progress = state.threads[thread]
    # a run under way when it was paused (a wait, a delay) that a retry or a move starts afresh never ends: its
    # record says so in this write (not a run that failed: its record says that)
    under_way = source is Status.PAUSED and progress.status != "failed" and entry.held is None
    cut_short = interrupted_record(entry, now) if under_way and _restarts(order) and entry.started_at_ms else None
    cut_field = record_field(entry.element_key, entry.path)
    if progress.status == "failed" and state.entry(thread) in (entry, None):
        progress.status = "running"  # its failure is what the operator settles now
        progress.failed_nodes = max(0, progress.failed_nodes - 1)
    entry.held = None
    moved_from = entry.element_key
    outcome = _act(actor, state, entry, order, now)
    if order.action == "move":
        entry = actor.interpreter.move_lane(state, entry.path, order.element)
    failure = _propagate(actor, state, outcome, now)
    final = failure is not None
    renewed = []
    if not final and source is Status.FAILED:  # the other lanes' children its failure cancelled: new ones
        renewed = await renew_cancelled_children(actor, state, [entry])
    target = Status.FAILED if final else Status.PAUSED
    if not final and source is Status.FAILED:  # paused at its new position: its timers frozen as a pause's
        actor.interpreter.freeze_timers(state, now)
        first = state.stack[0] if state.stack else None
        state.paused_at_node = first.element_id if first else None
    commit = snapshot_commit(state, [e for e in outcome.events if not _skipped_event(order, entry, e)], now)
    for stopped in outcome.interrupted:  # the lanes a failure stopped: what they were on never ends
        commit.elements[record_field(stopped.element_key, stopped.path)] = interrupted_record(stopped, now)
    if order.action == "skip":
        commit.elements[record_field(entry.element_key, entry.path)] = _skipped_record(entry, order, now)
    if cut_short is not None and cut_field not in commit.elements:
        commit.elements[cut_field] = cut_short
    audit = _audit(message, order, entry, source, target, before, _thread_stack(state, thread), outcome, now)
    if order.action == "move":
        audit.detail["movedFrom"] = moved_from
    if renewed:
        audit.detail["childrenStartedAgain"] = renewed
    commit.log = [*_without_own_entry(commit.log, order, entry), audit]
    if final:
        assert failure is not None
        commit.execution.update(status=Status.FAILED.value, stoppedAt=iso(now), error=json.dumps(failure.doc()))
        commit.state["active"] = 0
        for pending in state.stack:  # what was under way never ends: its record says so (not the one that failed)
            field = record_field(pending.element_key, pending.path)
            if pending.started_at_ms is not None and pending is not entry and field not in commit.elements:
                commit.elements[field] = interrupted_record(pending, now)
        if source is Status.PAUSED:  # a failed one keeps the retention its failure started (and its removal note)
            commit.expire_ms = actor.ctx.settings.retention_ms(actor.tenant)
            commit.execution.update(pausedAt="", pausedDurationMs=_paused_ms_until(actor.fields, now))
            commit.execution.update({PAUSED_BY: "", PAUSE_REASON: ""})
    elif source is Status.FAILED:  # paused at its new position: resume goes on from there
        commit.execution.update(status=Status.PAUSED.value, stoppedAt="", error="", pausedAt=iso(now))
        commit.execution.update({PAUSED_BY: message.caller.by, PAUSE_REASON: message.reason or ""})
        commit.execution[CRASHES] = 0  # a quarantined execution stepped gets its crash allowance back
        await actor.ctx.store.activate(actor.execution_id)  # in the active set first, as a retry does
    await actor.write(commit, expect=source, not_after_ms=message.not_after_ms)
    if source is Status.FAILED and not final:  # and after, as a retry does (a reconcile may have read `failed`)
        await actor.ctx.store.activate(actor.execution_id)
    actor.state = state
    actor.corrupted = False
    if target is not source:
        actor.status = target
        await actor.announce()
    if final and source is not Status.FAILED:  # it ends here (a failed one had ended already)
        actor.ctx.metrics.finished.labels(actor.process.definition.key, Status.FAILED.value).inc()
        await actor.ctx.store.deactivate(actor.execution_id)
        await ended_as_child_or_parent(actor, f"element {entry.element_key!r} failed by {message.caller.by}")
    if outcome.orphaned:
        reason = "the lane that waited for it was stopped"
        await actor.ctx.children.control(actor.tenant, "cancel", outcome.orphaned, actor.execution_id, reason)
    return StepResult(
        executionID=actor.execution_id,
        action=order.action,  # type: ignore[arg-type]
        elementKey=entry.element_key,
        lane=entry.path,
        status=target.value,  # type: ignore[arg-type]
        caught=_caught(outcome, entry),
        stack=_pending(state),
    )


async def run_now(actor: Host, message: Command) -> StepResult:
    """A running execution's element waiting on a timer (a task's backoff before its next attempt, a delay) goes
    on at once: its timer is set to now, written with the lane's next checkpoint, and its lane woken. 409 if the
    element waits on no such timer (a task under way, a wait-signal: signal it)."""
    order = message.step
    assert order is not None
    if actor.corrupted:
        raise StateCorrupted(f"execution {actor.execution_id}: its snapshot cannot be read")
    state = actor.state
    entry = find_entry(state, set(actor.process.elements), order, actor.execution_id)
    if entry.element_type not in ("task", "delay") or entry.due_at_ms is None:
        waits = "a task under way" if entry.element_type == "task" else f"a {entry.element_type}"
        raise InvalidTransition(
            f"cannot run element {entry.element_key!r} of execution {actor.execution_id} now: it is not waiting on "
            f"a timer (a retry backoff or a delay); it is {waits}",
            actor.status.value,
        )
    now = actor.ctx.clock.now_ms()
    before = [entry.to_doc()]
    due = entry.due_at_ms
    entry.due_at_ms = now
    detail = _detail(message, entry, Status.RUNNING, Status.RUNNING, before, [entry.to_doc()])
    detail["dueAt"] = iso(due)
    # the lanes' own checkpoint (they write the same state): one write, ordered with theirs
    await actor.writer.checkpoint([], Commit(log=[LogRecord(now, AUDIT_EVENTS["run-now"], entry.element_key, detail)]))
    actor.lanes.wake_all()
    return StepResult(
        executionID=actor.execution_id,
        action="run-now",
        elementKey=entry.element_key,
        lane=entry.path,
        status="running",
        stack=_pending(state),
    )


async def change_policy(actor: Host, message: Command) -> StepResult:
    """A pending task's retry policy and/or timeout, for this run of it (its stack entry's `policy`, read by the
    interpreter instead of the definition's): from its next failure (a backoff under way keeps its time) and its
    next attempt (an attempt under way keeps its timeout). Running: written with the lanes' next checkpoint;
    paused: the stored state re-read and written expecting paused."""
    order = message.step
    assert order is not None and order.policy is not None
    running = actor.status is Status.RUNNING
    if running and actor.corrupted:
        raise StateCorrupted(f"execution {actor.execution_id}: its snapshot cannot be read")
    state = actor.state if running else await stored_state(actor, message)
    entry = find_entry(state, set(actor.process.elements), order, actor.execution_id)
    if entry.element_type != "task":
        raise ValidationFailed(
            f"cannot change the policy of element {entry.element_key!r}: only a task has a retry policy and timeout",
            [f"elementKey: {entry.element_key!r} is a {entry.element_type}, not a task"],
        )
    now = actor.ctx.clock.now_ms()
    before = entry.to_doc()
    previous = entry.policy
    change = dict(order.policy)
    element = actor.process.elements.get(entry.element_key)
    if "retry" in change and isinstance(element, TaskElement):  # the fields given, over the policy in force
        change["retry"] = {**retry_policy(entry, element).model_dump(), **change["retry"]}
    entry.policy = {**(entry.policy or {}), **change}
    detail = _detail(message, entry, actor.status, actor.status, [before], [entry.to_doc()])
    detail["policy"] = {"before": previous, "after": entry.policy}
    audit = LogRecord(now, AUDIT_EVENTS["policy"], entry.element_key, detail)
    if running:
        await actor.writer.checkpoint([], Commit(log=[audit]))
    else:
        commit = snapshot_commit(state, [], now)
        commit.log.append(audit)
        await actor.write(commit, expect=Status.PAUSED, not_after_ms=message.not_after_ms)
        actor.state = state
        actor.corrupted = False
    return StepResult(
        executionID=actor.execution_id,
        action="policy",
        elementKey=entry.element_key,
        lane=entry.path,
        status=actor.status.value,  # type: ignore[arg-type]
        stack=_pending(state),
        policy=entry.policy,
    )


def _lane_entry(actor: Host, state: ExecutionState, order: StepOrder) -> StackEntry:
    """The pending entry of the lane a move names: 422 (the body names what the execution does not have: they are
    not in the path) if it has none, if `before` is not an element, or if `before` does not stand in the lane's own
    list (its thread's elements, or its branch's or iteration's)."""
    lane = order.lane or ""
    entry = state.entry(lane)
    if entry is None:
        pending = ", ".join(sorted({e.path for e in state.stack})) or "none"
        raise ValidationFailed(
            f"lane {lane!r} of execution {actor.execution_id} has no pending element",
            [f"lane: {lane!r} has no pending element (lanes pending: {pending})"],
        )
    if order.element not in actor.process.elements:
        raise ValidationFailed(
            f"execution {actor.execution_id} has no element {order.element!r} in its definition",
            [f"before: {order.element!r} is not an element of the execution's definition"],
        )
    if not same_list(actor.process, entry.element_key, order.element):
        where = "thread" if not lanes.is_branch(lane) else "branch or iteration"
        raise ValidationFailed(
            f"cannot move lane {lane!r} before {order.element!r}: not an element of its {where}",
            [f"before: {order.element!r} is not an element of lane {lane!r}'s {where} (a lane moves within its own)"],
        )
    return entry


async def _check_applies(actor: Host, state: ExecutionState, entry: StackEntry, order: StepOrder) -> None:
    """409 where the step cannot make sense for this element now (its status named); 422 for the wrong kind."""
    status = actor.status.value
    what = f"cannot {order.action} element {entry.element_key!r} of execution {actor.execution_id}"
    if order.action == "complete" and entry.element_type != "task":
        raise ValidationFailed(
            f"{what}: only a task can be completed with an output",
            [f"elementKey: {entry.element_key!r} is a {entry.element_type}, not a task; skip it (with an output)"],
        )
    if any(lanes.below(entry.path, other.path) for other in state.stack):
        raise InvalidTransition(
            f"{what}: its branches or iterations are on the stack; step an element in one of them", status
        )
    if entry.child_id is not None and order.action != "complete":
        ended = await actor.ctx.children.ended(entry.child_id)
        if ended is None:
            raise InvalidTransition(
                f"{what}: its child execution {entry.child_id} is running or paused; cancel it first", status
            )


def _act(actor: Host, state: ExecutionState, entry: StackEntry, order: StepOrder, now: int) -> Outcome:
    interpreter = actor.interpreter
    lane = entry.path
    if order.action == "move":
        return Outcome(LaneEnded())  # the lane's entry is replaced after (`Interpreter.move_lane`)
    try:
        if order.action == "retry":
            reset(state, entry)
            entry.child_id = None  # an ended child (checked): the call starts a new one, under a new key
            return Outcome(LaneEnded())
        if order.action == "skip":
            return interpreter.skip(state, lane, now, order.output, stored=order.has_output)
        if order.action == "complete":
            outcome = interpreter.task_succeeded(state, lane, order.output, now)
            if any(event.event == "element-failed" for event in outcome.events):  # its output did not fit
                output = state.memory.node_outputs.get(entry.element_key, {})
                raise PayloadTooLarge(f"the output given does not fit: {output.get('error', '')}")
            return outcome
        return interpreter.fail(state, lane, order.error, now, order.error_type)  # never held: asked for
    except ValueError as exc:
        raise ValidationFailed(
            f"cannot skip element {entry.element_key!r}: {exc}",
            [f"elementKey: {entry.element_key!r}: {exc}; retry, complete or fail it instead"],
        ) from None
    except LimitExceeded as exc:
        raise PayloadTooLarge(f"the output given does not fit: {exc}") from None


def _propagate(actor: Host, state: ExecutionState, outcome: Outcome, now: int) -> Failure | None:
    """A branch or iteration that failed for good (by the step, or a result that could not be computed) fails
    its fan-out now, as its runner would: its catch, or up to the thread. The thread's failure, if it comes to
    that (the execution ends failed)."""
    while True:
        if isinstance(outcome.step, ElementFailed):
            return Failure.of(outcome.step)
        failing = [lane for lane in outcome.woken if _fan_out_failed(state, lane)]
        if not failing:
            return None
        more = actor.interpreter.fail_fan_out(state, failing[0], now)
        outcome.step = more.step
        outcome.events += more.events
        outcome.woken = [lane for lane in outcome.woken if lane != failing[0]] + more.woken
        outcome.stopped += more.stopped
        outcome.orphaned += more.orphaned
        outcome.interrupted += more.interrupted


def _restarts(order: StepOrder) -> bool:
    """The step starts the lane's element afresh (or another in its place): the run under way is given up."""
    return order.action in ("retry", "move")


def _fan_out_failed(state: ExecutionState, lane: str) -> bool:
    entry = state.entry(lane)
    return entry is not None and entry.fanout is not None and entry.fanout.failure is not None


def _skipped_event(order: StepOrder, entry: StackEntry, event: ElementEvent) -> bool:
    """The completion a skip goes through: its record and log entry say `skipped` instead."""
    return order.action == "skip" and event.element_key == entry.element_key and event.event == "element-completed"


def _skipped_record(entry: StackEntry, order: StepOrder, now: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "key": entry.element_key,
        "type": entry.element_type,
        "threadKey": entry.thread_key,
        "attempts": entry.attempt,
        "status": "skipped",
        "stoppedAt": iso(now),
    }
    if lanes.is_branch(entry.path):
        record["path"] = entry.path
    if order.has_output:
        record["output"] = order.output
    return record


def _without_own_entry(log: list[LogRecord], order: StepOrder, entry: StackEntry) -> list[LogRecord]:
    """The element's own log entry is replaced by the audit entry, which says the same and more."""
    event = AUDIT_EVENTS[order.action] if order.action != "skip" else "element-completed"
    return [record for record in log if not (record.element_key == entry.element_key and record.event == event)]


def _audit(
    message: Command,
    order: StepOrder,
    entry: StackEntry,
    source: Status,
    target: Status,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    outcome: Outcome,
    now: int,
) -> LogRecord:
    detail = _detail(message, entry, source, target, before, after)
    if order.action in ("skip", "complete") and (order.has_output or order.action == "complete"):
        detail["output"] = order.output
    if order.action == "fail":
        detail.update(error=order.error, errorType=order.error_type)
        caught = _caught(outcome, entry)
        if caught is not None:
            detail["caught"] = caught
    return LogRecord(now, AUDIT_EVENTS[order.action], entry.element_key, detail)


def _detail(
    message: Command,
    entry: StackEntry,
    source: Status,
    target: Status,
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
) -> dict[str, Any]:
    """What every step's audit entry says: the lane, who, why, the request, the status before and after, and the
    stack entries before and after."""
    detail: dict[str, Any] = {
        "thread": entry.thread_key,
        "by": message.caller.by,
        "requestId": message.caller.request_id,
        "from": source.value,
        "to": target.value,
        "stack": {"before": before, "after": after},
    }
    if lanes.is_branch(entry.path):
        detail["path"] = entry.path
    if message.reason is not None:
        detail["reason"] = message.reason
    return detail


def _pending(state: ExecutionState) -> list[PendingElement]:
    return [PendingElement(elementKey=e.element_key, lane=e.path, attempt=e.attempt) for e in state.stack]


def _caught(outcome: Outcome, entry: StackEntry) -> str | None:
    for event in outcome.events:
        if event.element_key == entry.element_key and event.event == "element-failed":
            return event.caught
    return None


def _thread_stack(state: ExecutionState, thread: str) -> list[dict[str, Any]]:
    return [e.to_doc() for e in state.stack if e.thread_key == thread]


def _paused_ms_until(fields: dict[str, str], now: int) -> int:
    paused_at = fields.get("pausedAt")
    paused_ms = max(now - parse_iso(paused_at), 0) if paused_at else 0
    return int(fields.get("pausedDurationMs") or 0) + paused_ms
