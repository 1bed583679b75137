"""`blockedOn` of the status answer: per lane that is not moving, what it waits for ("Why is it not moving?").

What each lane waits for comes from the stack (`engine/waits.py`); the rest from what the execution's keys
already hold: its hash (status, who paused it and why, its owner, the buffered signals' counts), the record of a
task in its backoff (the last error), the hash of a child (its status), and the owner's heartbeat. Everything is
read per lane, never per execution of the engine: O(lanes) whatever runs beside it.

Entries (docs/api.md has them for users):

    signal      waits for signal S: {signal, buffered, timeoutAt}; until = the timeout
    delay       {dueAt}; until = dueAt
    backoff     a task waits to retry: {attempt (the next), retryAt, lastError, lastErrorType}; until = retryAt
    task        attempt n runs on node N: {attempt, node, handler, timeoutAt}
    child       a call-process waits for its child: {childExecutionID, childStatus}
    held-failed its element failed for good and is held (onExhausted: pause; the execution is paused for it):
                {error, type, attempts}; since = when it failed. Shown as such whatever the status.
    paused      every lane of a paused execution: {by, reason, waiting: what it waits for once resumed}
    owner-dead  every lane of a running execution whose owner's heartbeat is gone and which no node has adopted
                yet: {owner, lastCheckpointAt, waiting}; since = its last checkpoint (the owner lived then)

A running lane whose element has not started yet (its runner is about to start it) moves: it has no entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from procengine.actors.actor import ExecutionActor
from procengine.actors.records import record_field
from procengine.engine.compiled import CompiledProcess
from procengine.engine.state import StackEntry
from procengine.engine.waits import LaneWait, lane_waits
from procengine.runtime.clock import iso
from procengine.statuses import Status
from procengine.store.executions import BUFFERED_SIGNALS, PAUSE_REASON, PAUSED_BY

__all__ = [
    "Blocked",
    "blocked_on",
    "live_blocked_on",
    "parse_buffered",
]


class Blocked:
    """The lanes' waits of one execution, and what must still be read to say why each does not move."""

    def __init__(self, process: CompiledProcess, stack: list[StackEntry], fields: Mapping[str, str]) -> None:
        self.status = Status(fields["status"])
        self.fields = fields
        self.waits = [] if self.status.is_final else lane_waits(process, stack)

    def record_fields(self) -> list[str]:
        """The element records that hold what a lane's wait lacks: the last error of a task in its backoff."""
        return [record_field(w.element_key, w.lane) for w in self.waits if w.kind == "backoff"]

    def child_ids(self) -> list[int]:
        return [w.child_id for w in self.waits if w.child_id is not None]

    def owner(self) -> str | None:
        """The node whose heartbeat says whether the execution moves at all (None: nothing to ask)."""
        if self.status is not Status.RUNNING or not self.waits:
            return None
        return self.fields.get("owner", "")


def blocked_on(
    blocked: Blocked,
    *,
    buffered: Mapping[str, int],
    records: Mapping[str, Any],
    children: Mapping[int, str],
    owner_alive: bool,
    saved_at: str | None,
) -> list[dict[str, Any]]:
    """The `blockedOn` entries. `buffered`: the signals waiting, by name; `records`: element records by field;
    `children`: child statuses by id; `saved_at`: when the execution was last checkpointed."""
    fields = blocked.fields
    entries: list[dict[str, Any]] = []
    for wait in blocked.waits:
        kind, since, until, detail = _own(wait, fields, buffered, records, children)
        if kind == "held-failed":  # its own kind whatever the status: paused for it, it is what to act on
            entries.append(_entry(wait, kind, _iso(since), None, detail))
        elif blocked.status is Status.PAUSED:
            waiting = {"kind": kind, **detail} if kind != "ready" else None
            if waiting is not None and wait.remaining_ms is not None:
                waiting["remainingMs"] = wait.remaining_ms
            by = fields.get(PAUSED_BY) or None
            paused = {"by": by, "reason": fields.get(PAUSE_REASON) or None, "waiting": waiting}
            entries.append(_entry(wait, "paused", fields.get("pausedAt") or None, None, paused))
        elif not owner_alive:
            waiting = {"kind": kind, **detail} if kind != "ready" else None
            owner = {"owner": fields.get("owner") or None, "lastCheckpointAt": saved_at, "waiting": waiting}
            entries.append(_entry(wait, "owner-dead", saved_at, None, owner))
        elif kind != "ready":
            entries.append(_entry(wait, kind, _iso(since), _iso(until), detail))
    return entries


def _own(
    wait: LaneWait,
    fields: Mapping[str, str],
    buffered: Mapping[str, int],
    records: Mapping[str, Any],
    children: Mapping[int, str],
) -> tuple[str, int | None, int | None, dict[str, Any]]:
    """What the lane itself waits for: (kind, since, until, detail)."""
    kind, since, until = wait.kind, wait.since_ms, wait.until_ms
    detail: dict[str, Any]
    if kind == "signal":
        detail = {"signal": wait.signal, "buffered": buffered.get(wait.signal or "", 0), "timeoutAt": _iso(until)}
    elif kind == "delay":
        detail = {"dueAt": _iso(until)}
    elif kind == "backoff":
        record = records.get(record_field(wait.element_key, wait.lane))
        record = record if isinstance(record, dict) else {}
        detail = {
            "attempt": wait.attempt,
            "retryAt": _iso(until),
            "lastError": record.get("error"),
            "lastErrorType": record.get("errorType"),
        }
    elif kind == "task":
        detail = {"attempt": wait.attempt, "node": fields.get("owner") or None, "handler": wait.handler}
        detail["timeoutAt"] = _iso(until)
    elif kind == "child":
        detail = {"childExecutionID": wait.child_id, "childStatus": children.get(wait.child_id or 0)}
    elif kind == "held-failed":
        detail = {"error": wait.error, "type": wait.error_type, "attempts": wait.attempt}
    else:
        detail = {}
    return kind, since, until, detail


def _entry(wait: LaneWait, kind: str, since: str | None, until: str | None, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "lane": wait.lane,
        "elementKey": wait.element_key,
        "kind": kind,
        "since": since,
        "until": until,
        "detail": detail,
    }


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso(ms)


def parse_buffered(fields: Mapping[str, str]) -> dict[str, int]:
    """The buffered signals' counts the execution hash holds (none when the field is absent: a hash written before
    the counts were kept shows none until its next checkpoint)."""
    raw = fields.get(BUFFERED_SIGNALS)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(name): count for name, count in doc.items() if isinstance(count, int)}


def live_blocked_on(actor: ExecutionActor) -> list[dict[str, Any]] | None:
    """`blockedOn` from a live actor's copy, without a round trip (its owner is this node: alive); None when it
    needs what only Redis holds: a child's status, or the record of a task in its backoff that this actor has not
    written itself (it took the execution over)."""
    blocked = Blocked(actor.process, actor.state.stack, actor.fields)
    if blocked.child_ids():
        return None
    records = actor.writer.task_records
    if any(name not in records for name in blocked.record_fields()):
        return None
    return blocked_on(
        blocked, buffered=parse_buffered(actor.fields), records=records, children={}, owner_alive=True, saved_at=None
    )
