"""How an execution ends on its own: completed, failed (an element failed for good), or failed by the crash
quarantine; the final write, and what follows it (children cancelled, the parent told). A cancel ends it too: it
shares `ended_as_child_or_parent` and `record_interrupted` (see `transitions.py`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from procengine.actors.host import Host
from procengine.actors.records import Failure, interrupted_record, record_field, snapshot_commit, transition_log
from procengine.api.service import Caller
from procengine.runtime.clock import iso
from procengine.statuses import Status
from procengine.store import indexes
from procengine.store.executions import Commit

__all__ = ["NODE_CRASHED", "SYSTEM", "ended_as_child_or_parent", "finish", "quarantined", "record_interrupted"]

log = logging.getLogger(__name__)

SYSTEM = Caller(tenant="", by="system", request_id="")
NODE_CRASHED = "NodeCrashed"
"""The error type of an execution failed by the crash quarantine (see `quarantined`)."""


async def finish(actor: Host, status: Status) -> None:
    """The final write of an execution whose threads are done (`completed`) or one of whose elements failed."""
    await actor.lanes.stop(grace_s=0)
    failure = actor.lanes.failure
    now = actor.ctx.clock.now_ms()
    if status is Status.FAILED:  # the timers of other lanes stop with it, as a pause's do; a retry thaws them
        actor.interpreter.freeze_timers(actor.state, now)
    commit = snapshot_commit(actor.state, [], now)
    commit.execution.update(status=status.value, stoppedAt=iso(now))
    commit.state["active"] = 0
    commit.expire_ms = actor.ctx.settings.retention_ms(actor.tenant)
    error: dict[str, Any] = {}
    if failure is not None:
        error = failure.doc()
        commit.execution["error"] = json.dumps(error)
    interrupted = record_interrupted(actor, commit, now, ended=True)
    if failure is not None and failure.record is not None:
        commit.elements[record_field(failure.element_key, failure.record.get("path"))] = failure.record
    commit.log.append(transition_log(now, status.value, SYSTEM, "running", status.value, None, **error, **interrupted))
    # out of the active and `owned` sets in the same write (beside it, after it, on a Redis Cluster): one round
    # trip per execution less than `deactivate` after it
    commit.index = indexes.deactivated(actor.ctx.store.keys, actor.ctx.store.node_id, actor.execution_id)
    await actor.write(commit, expect=Status.RUNNING)
    actor.status = status
    await actor.announce()
    actor.ctx.metrics.finished.labels(actor.process.definition.key, status.value).inc()
    await ended_as_child_or_parent(actor, f"it {status.value}")
    log.info("execution %s: %s", actor.execution_id, status.value)


async def ended_as_child_or_parent(actor: Host, reason: str | None) -> None:
    """This execution is final: children still waited for are cancelled, a parent is told."""
    waited = [] if actor.corrupted else actor.lanes.waited_children()
    if waited:
        await actor.ctx.children.control(actor.tenant, "cancel", waited, actor.execution_id, reason)
    parent = actor.fields.get("parentExecutionID")
    if parent:
        actor.ctx.children.notify_parent(int(parent))


def record_interrupted(
    actor: Host, commit: Commit, now: int, *, ended: bool = False, frozen_at: int | None = None
) -> dict[str, Any]:
    """Mark the records of the tasks cut short in `commit`; the log detail that names them ({} if none).
    `ended`: the execution ends in this write (cancelled or failed), so the elements under way on its stack
    (a delay, a wait, a fan-out or a call waiting for its lanes or child) never finish either: their records
    say `interrupted` too, instead of `running` for good. Not the element that failed: its record says so.
    `frozen_at`: the execution was paused since then (a cancel of a paused execution): those elements stopped
    running at the pause, which their `stoppedAt` says, not the cancel."""
    lanes = actor.lanes
    cut, lanes.interrupted = lanes.interrupted, []
    for entry in cut:
        commit.elements[record_field(entry.element_key, entry.path)] = interrupted_record(entry, now)
    if ended:
        failed = lanes.failure.element_key if lanes.failure is not None else None  # of a thread, not a branch
        for entry in actor.state.stack:
            field = record_field(entry.element_key, entry.path)
            if entry.started_at_ms is not None and field not in (failed, *commit.elements):
                commit.elements[field] = interrupted_record(entry, now if frozen_at is None else frozen_at)
    return {"interrupted": [entry.element_key for entry in cut]} if cut else {}


def quarantined(actor: Host, crashes: int, last_owner: str) -> Failure:
    """The failure (NodeCrashed) of an execution that `crashes` nodes in a row stopped while it ran (the last one
    `last_owner`), with no progress in between: it is taken for what stops them, and failed instead of run once
    more."""
    stack = actor.state.stack
    under_way = [entry for entry in stack if entry.fanout is None] or stack
    culprit = max(under_way, key=lambda entry: entry.execution_order, default=None)
    elements = ", ".join(repr(entry.element_key) for entry in under_way) or "none"
    error = (
        f"{crashes} nodes in a row stopped while it ran (the last: {last_owner}), with no progress in between; "
        f"under way: {elements}. Failed rather than adopted again (PROCENGINE_NODE_CRASH_LIMIT="
        f"{actor.ctx.settings.node_crash_limit})"
    )
    record = None
    if culprit is not None:
        now = actor.ctx.clock.now_ms()
        record = {**interrupted_record(culprit, now), "status": "failed", "error": error, "errorType": NODE_CRASHED}
        progress = actor.state.threads.get(culprit.thread_key)
        if progress is not None:
            progress.status = "failed"
            progress.failed_nodes += 1
    key = culprit.element_key if culprit is not None else ""
    log.error(
        "execution %s: %s; element %s; marking it failed (%s)",
        actor.execution_id,
        f"{crashes} nodes in a row stopped while it ran",
        key or None,
        NODE_CRASHED,
        extra={"executionID": actor.execution_id},
    )
    return Failure(key, error, NODE_CRASHED, culprit.attempt if culprit else 0, record)
