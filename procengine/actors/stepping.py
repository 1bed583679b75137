"""Step mode (issue 22, point 5): `POST …/{id}/step` on a paused execution runs exactly the next element of each lane
(or of one lane) and pauses it again, answering with what ran.

It is a resume whose lanes may each begin one element (`LaneRunners.stepping`): a lane stops before its second, a
lane that begins a wait (a signal, a timer, a child, its branches) waits, and lanes its element starts (a parallel's
branches, a for-each's iterations) begin nothing. Once every runner has stopped or waits, the execution is paused as
a pause would pause it (a task still in flight after the pause grace is cut short), with a `stepped` log entry
before the `paused` one. An element that fails the execution, or the last one, ends it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from procengine.actors.host import Host
from procengine.actors.messages import Command
from procengine.actors.transitions import resume, write_pause
from procengine.api.views import SteppedResult, SteppedRun
from procengine.errors import ValidationFailed
from procengine.statuses import Status
from procengine.store.executions import LogRecord

__all__ = ["MIN_WAIT_S", "step"]

MIN_WAIT_S = 1.0
"""A step waits for its elements for the pause grace (`--pause-grace-ms`), at least this long; then it pauses the
execution, cutting short a task still in flight (it runs again, same attempt, when the execution goes on)."""


async def step(actor: Host, message: Command) -> SteppedResult:
    lanes = actor.lanes
    pending = [entry.path for entry in actor.state.stack]
    if message.lane is not None and message.lane not in pending:
        raise ValidationFailed(
            "no such lane pending", [f"lane: {message.lane!r} has no element pending; pending: {sorted(pending)}"]
        )
    lanes.stepping = {message.lane} if message.lane is not None else set(pending)
    lanes.stepped = {}
    lanes.quiet.clear()
    try:
        await resume(actor, Command("resume", message.caller, message.reason, not_after_ms=message.not_after_ms))
        lanes.settle_step()  # no lane to run at all (a thread ended just before the pause): nothing to wait for
        wait_s = max(MIN_WAIT_S, actor.ctx.settings.pause_grace_ms / 1000)
        with contextlib.suppress(TimeoutError):  # paused below all the same
            await asyncio.wait_for(lanes.quiet.wait(), wait_s)
        inflight = lanes.tasks_in_flight
        await lanes.stop(grace_s=0)  # the grace was the wait
        stepped = dict(lanes.stepped)
    finally:
        lanes.stepping = None
    if actor.writer.crash is not None:
        raise actor.writer.crash
    ran = [_run(actor, lane, entry) for lane, entry in stepped.items()]
    if not await actor.settle() and actor.status is Status.RUNNING:
        now = actor.ctx.clock.now_ms()
        told: dict[str, Any] = {"ran": [run.model_dump() for run in ran], "by": message.caller.by}
        told["requestId"] = message.caller.request_id
        if message.reason is not None:
            told["reason"] = message.reason
        stops = [LogRecord(now, "breakpoint", e.element_key, {"lane": e.path}) for e, _ in lanes.at_breakpoint]
        logs = [*stops, LogRecord(now, "stepped", None, told)]
        await write_pause(actor, message.caller, message.reason or "step", None, inflight, first_logs=logs)
    return SteppedResult(executionID=actor.execution_id, status=actor.status.value, ran=ran)


def _run(actor: Host, lane: str, entry: Any) -> SteppedRun:
    now = actor.state.entry(lane)
    outcome = "under way" if now is entry else "completed"
    if entry.held is not None or (now is entry and now.held is not None):
        outcome = "failed (held)"
    return SteppedRun(elementKey=entry.element_key, lane=lane, outcome=outcome)
