"""The status answer of a running live actor, rendered in one pass (the first read after a write).

A live actor keeps its rendered status until its next write (`Node._live_status`), so a read of an unchanged
execution is a lookup. The first read after a write renders it: through `status_doc`, `live_blocked_on` and
`RenderedStatus.of` that is three documents, a thread object per thread, a wait object per lane and a copy checked
value by value, about 75 µs of CPU per read in a node with 50,000 executions (issue 21, bench --only flat: at that
size almost every read in a window is the first of its execution, and the code and the execution's state are out of
the CPU's caches by then). `render_running` builds the one dict the answer is rendered from, straight from the
actor's copy, for the common case: a running execution without an error or children whose lanes wait for a signal,
a delay or a running task, or have not started. Anything else (paused, final, a backoff, a child, a held failure,
a value of an unexpected type) is None, and the general path renders it as before. Both give the same bytes
(tests/actors/test_live_status.py holds them side by side).
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json

from procengine.actors.actor import ExecutionActor
from procengine.api.rendered import DURATION, PAUSED, RenderedStatus
from procengine.engine.attributes import shown
from procengine.engine.waits import lane_waits
from procengine.node.blocked import parse_buffered
from procengine.runtime.clock import iso
from procengine.store.search import ATTRIBUTES_FIELD, decode_attributes

__all__ = ["render_running"]

_SCALARS = (str, int, float, bool, type(None))


def render_running(actor: ExecutionActor) -> RenderedStatus | None:
    """The rendered status of a running execution in the common case (see the module); None: not that case."""
    fields = actor.fields
    if (
        fields.get("status") != "running"
        or fields.get("error")
        or fields.get("children")
        or fields.get("stoppedAt")
        or fields.get("pausedAt")
    ):
        return None
    threads = _threads(actor.thread_records.values())
    if not threads:  # none kept (a hash edited by hand): its fields say the counts
        return None
    blocked = _blocked_on(actor, fields)
    if blocked is None:
        return None
    completed = failed = 0
    for thread in threads:
        completed += thread["completedNodes"]
        failed += thread.pop("failedNodes")
    total = int(fields.get("totalNodes", 0))
    started_at = fields["startedAt"]
    paused_ms = int(fields.get("pausedDurationMs") or 0)
    parent = fields.get("parentExecutionID")
    if type(started_at) is not str:
        return None
    plain = {
        "executionID": actor.execution_id,
        "processID": int(fields["processID"]),
        "processKey": fields.get("processKey", ""),
        "processVersion": int(fields.get("processVersion", 0)),
        "status": "running",
        "isActive": True,
        "progress": {
            "totalNodes": total,
            "completedNodes": completed,
            "failedNodes": failed,
            "percentage": 0.0 if total == 0 else min(round(completed / total * 100, 2), 100.0),
        },
        "timing": {
            "startedAt": started_at,
            "stoppedAt": None,
            "durationMs": DURATION,
            "pausedAt": None,
            "pausedDurationMs": PAUSED,
        },
        "threads": threads,
        "error": None,
        "parentExecutionID": int(parent) if parent else None,
        "children": [],
        "attributes": shown(decode_attributes(fields[ATTRIBUTES_FIELD])) if fields.get(ATTRIBUTES_FIELD) else {},
        "blockedOn": blocked,
    }
    body = to_json(plain, inf_nan_mode="null")
    return RenderedStatus.of_body(body, started_at, None, paused_ms, None)


def _threads(records: Any) -> list[dict[str, Any]] | None:
    """The threads' entries in the answer's order (failedNodes kept for the sum); None if a record is not of the
    exact types the writer keeps."""
    threads: list[dict[str, Any]] = []
    for record in records:
        if type(record) is not dict:
            return None
        thread_id, key, total = record.get("threadExecutionID"), record.get("threadKey"), record.get("totalNodes")
        process_thread_id = record.get("processThreadID")
        completed, failed = record.get("completedNodes", 0), record.get("failedNodes", 0)
        status = record.get("status", "running")
        if not (
            type(thread_id) is int
            and type(process_thread_id) is int
            and type(key) is str
            and type(total) is int
            and type(completed) is int
            and type(failed) is int
            and type(status) is str
        ):
            return None
        threads.append(
            {
                "threadExecutionID": thread_id,
                "processThreadID": process_thread_id,
                "threadKey": key,
                "status": status,
                "completedNodes": completed,
                "totalNodes": total,
                "failedNodes": failed,
            }
        )
    if len(threads) > 1:
        threads.sort(key=lambda t: t["processThreadID"])  # stable, as status_doc's sort
    return threads


def _blocked_on(actor: ExecutionActor, fields: dict[str, str]) -> list[dict[str, Any]] | None:
    """`blockedOn` of a running execution whose owner is this node (alive); None for a lane that waits for what
    this pass does not render (a backoff, a child, a held failure)."""
    entries: list[dict[str, Any]] = []
    buffered: dict[str, int] | None = None
    for wait in lane_waits(actor.process, actor.state.stack):
        kind, until = wait.kind, wait.until_ms
        if kind == "ready":
            continue
        if type(wait.lane) is not str or type(wait.element_key) is not str:
            return None
        detail: dict[str, Any]
        if kind == "signal":
            if buffered is None:
                buffered = parse_buffered(fields)
            detail = {
                "signal": wait.signal,
                "buffered": buffered.get(wait.signal or "", 0),
                "timeoutAt": None if until is None else iso(until),
            }
        elif kind == "delay":
            detail = {"dueAt": None if until is None else iso(until)}
        elif kind == "task":
            detail = {
                "attempt": wait.attempt,
                "node": fields.get("owner") or None,
                "handler": wait.handler,
                "timeoutAt": None if until is None else iso(until),
            }
        else:
            return None
        if not all(type(value) in _SCALARS for value in detail.values()):
            return None
        since = wait.since_ms
        entries.append(
            {
                "lane": wait.lane,
                "elementKey": wait.element_key,
                "kind": kind,
                "since": None if since is None else iso(since),
                "until": None if until is None else iso(until),
                "detail": detail,
            }
        )
    return entries
