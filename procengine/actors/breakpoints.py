"""Live breakpoints (issue 22, point 4): `PUT …/{id}/breakpoints` sets where the execution's lanes stop before an
element, and a lane that stops at one pauses the execution.

The answer cannot race the element's start. The actor's mailbox handler and its lane runners share one event loop:
the handler puts the new breakpoints in the runners' hands before it awaits anything, and a runner tests them and
begins the element in one step (`LaneRunners._stops_before`). So from that moment no lane begins a breakpointed
element, and every run of it that had begun is on the stack, among the pure run's events not yet written, or in
the element records Redis holds once the writes before have landed, which the handler reads after its own fenced
write of the breakpoints (the execution hash's `pauseBefore`, read again when another node activates it). What it
answers as `alreadyStarted` is therefore exactly the runs that will not stop.
"""

from __future__ import annotations

from typing import Any

from procengine.actors.host import Host
from procengine.actors.messages import Command
from procengine.actors.transitions import write_pause
from procengine.api.service import Caller
from procengine.api.views import BreakpointsResult, StartedRun
from procengine.engine.breakpoints import parsed, to_field, waits_before
from procengine.engine.lanes import is_branch
from procengine.engine.state import StackEntry
from procengine.statuses import Status
from procengine.store.executions import Commit, LogRecord

__all__ = ["BREAKPOINT", "pause_at_breakpoint", "set_breakpoints"]

BREAKPOINT = Caller(tenant="", by="breakpoint", request_id="")
"""Who pauses an execution at a breakpoint."""


async def set_breakpoints(actor: Host, message: Command) -> BreakpointsResult:
    wanted = parsed(message.payload, actor.process)  # 422 listing every problem, before anything changes
    actor.lanes.breakpoints = wanted  # in the runners' hands before anything is awaited
    keys = {breakpoint.element for breakpoint in wanted}
    started: dict[tuple[str, str], None] = {}  # (element, lane), in the order found
    for entry in actor.state.stack:  # under way now
        if entry.element_key in keys and not _not_begun(entry):
            started[(entry.element_key, entry.path)] = None
    for event in actor.writer.unwritten_events():  # begun (or done) in a pure run not written yet
        if event.element_key in keys:
            started[(event.element_key, event.path or event.thread_key)] = None
    now = actor.ctx.clock.now_ms()
    detail: dict[str, Any] = {"by": message.caller.by, "requestId": message.caller.request_id}
    detail["pauseBefore"] = [breakpoint.to_doc() for breakpoint in wanted]
    if message.reason is not None:
        detail["reason"] = message.reason
    commit = Commit(execution={"pauseBefore": to_field(wanted)}, log=[LogRecord(now, "breakpoints-set", None, detail)])
    await actor.write(commit, expect=actor.status, not_after_ms=message.not_after_ms)
    # every write before ours has landed: the records hold every run begun before the breakpoints were set
    for name, record in (await actor.ctx.store.elements(actor.execution_id)).items():
        key = name.rsplit("/", 1)[-1]
        if key in keys and record.get("status") is not None:
            lane = name.rsplit("/", 1)[0] if "/" in name else str(record.get("threadKey", ""))
            started[(key, lane)] = None
    return BreakpointsResult(
        executionID=actor.execution_id,
        pauseBefore=[breakpoint.to_doc() for breakpoint in wanted],
        alreadyStarted=[StartedRun(elementKey=key, lane=lane) for key, lane in started],
    )


def _not_begun(entry: StackEntry) -> bool:
    return waits_before(entry) or entry.at_breakpoint


async def pause_at_breakpoint(actor: Host) -> None:
    """Pause the execution for the lanes stopped at a breakpoint (unless it ended meanwhile), as a pause would: the
    other lanes freeze, tasks in flight get the pause grace; the log says `breakpoint` for each."""
    lanes = actor.lanes
    inflight = lanes.tasks_in_flight
    hits = list(lanes.at_breakpoint)
    await lanes.stop(grace_s=actor.ctx.settings.pause_grace_ms / 1000)
    if actor.writer.crash is not None:
        raise actor.writer.crash
    if await actor.settle() or actor.status is not Status.RUNNING:
        return
    now = actor.ctx.clock.now_ms()
    stops: list[dict[str, Any]] = []
    logs = []
    for entry, error in hits:
        stop: dict[str, Any] = {"elementKey": entry.element_key, "lane": entry.path}
        if error is not None:
            stop["conditionError"] = error
        stops.append(stop)
        logs.append(
            LogRecord(now, "breakpoint", entry.element_key, {k: v for k, v in stop.items() if k != "elementKey"})
        )
    first = hits[0][0]
    where = f" in {first.path}" if is_branch(first.path) else ""
    reason = f"breakpoint before {first.element_key!r}{where}"
    await write_pause(actor, BREAKPOINT, reason, None, inflight, first_logs=logs, breakpoints=stops)
