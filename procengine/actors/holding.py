"""Pause on failure (`onExhausted: pause`): an element failed for good, no catch took it, and it is held on the
stack (`Interpreter._hold`); its lane stopped and told the actor (`LaneRunners.held`), which pauses the execution
here, as a pause would: the other lanes freeze (tasks in flight get the pause grace, timers keep what is left),
and the paused write says who (`engine`) and why (the element and its error). Resume retries the held element
(`transitions.resume`); a step control settles it.
"""

from __future__ import annotations

from typing import Any

from procengine.actors.host import Host
from procengine.actors.transitions import write_pause
from procengine.api.service import Caller
from procengine.engine.state import StackEntry

__all__ = ["ENGINE", "pause_held"]

ENGINE = Caller(tenant="", by="engine", request_id="")
"""Who pauses an execution whose element failure is held."""


async def pause_held(actor: Host) -> None:
    """Pause the execution for the failures held on its stack (unless it ended, failed or completed, meanwhile)."""
    lanes = actor.lanes
    inflight = lanes.tasks_in_flight
    await lanes.stop(grace_s=actor.ctx.settings.pause_grace_ms / 1000)
    if actor.writer.crash is not None:
        raise actor.writer.crash
    if await actor.settle():  # another lane failed for good (no hold), or everything else ended, meanwhile
        return
    held = sorted((e for e in actor.state.stack if e.held is not None), key=_held_at)
    if not held:  # nothing held any more (cannot happen: only the actor changes the stack while runners stop)
        lanes.start()
        return
    first = held[0]
    assert first.held is not None
    reason = f"element {first.element_key!r} failed ({first.held.get('type')}): {first.held.get('error')}"
    if len(held) > 1:
        reason += f" (and {len(held) - 1} more held)"
    await write_pause(actor, ENGINE, reason, None, inflight, held=[_held_detail(entry) for entry in held])


def _held_at(entry: StackEntry) -> int:
    at = (entry.held or {}).get("atMs")
    return at if isinstance(at, int) else 0


def _held_detail(entry: StackEntry) -> dict[str, Any]:
    held = entry.held or {}
    detail: dict[str, Any] = {"element": entry.element_key, "thread": entry.thread_key, "attempts": entry.attempt}
    if entry.path != entry.thread_key:
        detail["path"] = entry.path
    detail.update(error=held.get("error"), type=held.get("type"))
    return detail
