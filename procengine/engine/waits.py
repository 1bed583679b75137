"""What each lane of an execution waits for, read from its stack alone (pure: no clock, no Redis).

The stack entry of a lane says where it stands: a wait-signal or a delay that has started (its timer in
`due_at_ms`, or frozen by a pause in `remaining_ms`), a task in its backoff before a retry (`due_at_ms` with no
start) or running (`started_at_ms`), a call-process waiting for its child (`child_id`). `node/blocked.py` adds what
the stack does not hold (the execution's status, who paused it, buffered signals, the last error, the child's
status, whether the owner lives) and makes the `blockedOn` entries of the status answer out of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from procengine.engine.compiled import CompiledProcess
from procengine.engine.definitions import CallProcessElement, DelayElement, TaskElement, WaitSignalElement
from procengine.engine.policy import retry_policy, timeout_ms
from procengine.engine.state import StackEntry

WaitKind = Literal["signal", "delay", "backoff", "task", "child", "held-failed", "ready"]
"""`ready`: the lane's element has not started (it starts as soon as its runner gets to it, or on resume)."""


@dataclass(frozen=True, slots=True)
class LaneWait:
    lane: str
    element_key: str
    kind: WaitKind
    attempt: int
    since_ms: int | None = None
    """When the wait began: the element's start; a backoff's failed attempt (the retry time less its delay)."""
    until_ms: int | None = None
    """When it ends by itself: a delay's due time, a wait's timeout, a retry's time, a task's timeout."""
    remaining_ms: int | None = None
    """A timer a pause froze: what is left of it (it runs again on resume)."""
    signal: str | None = None
    handler: str | None = None
    child_id: int | None = None
    error: str | None = None
    """`held-failed`: the failure held on the stack, its error and type."""
    error_type: str | None = None


def lane_waits(process: CompiledProcess, stack: Iterable[StackEntry]) -> list[LaneWait]:
    """One per lane of the stack, in stack order; a parallel or for-each whose lanes are open is left out (its
    branches and iterations, each a lane of the stack, say what they wait for)."""
    found: list[LaneWait] = []
    for entry in stack:
        if entry.fanout is not None:
            continue
        wait = _wait_of(process, entry)
        if wait is not None:
            found.append(wait)
    return found


def signal_names(process: CompiledProcess) -> list[str]:
    """The signals some wait-signal of the definition can take (branches and bodies included), sorted."""
    return sorted({e.signal for e in process.elements.values() if isinstance(e, WaitSignalElement)})


def _wait_of(process: CompiledProcess, entry: StackEntry) -> LaneWait | None:
    element = process.elements.get(entry.element_key)
    if element is None:  # a stack that names an element the definition lacks: nothing to say of it
        return None
    lane, key, attempt, started = entry.path, entry.element_key, entry.attempt, entry.started_at_ms
    due, remaining = entry.due_at_ms, entry.remaining_ms
    if entry.held is not None:  # failed for good and held (onExhausted: pause): it waits for resume or a step
        at, error, kind = entry.held.get("atMs"), entry.held.get("error"), entry.held.get("type")
        since = at if isinstance(at, int) else None
        return LaneWait(lane, key, "held-failed", attempt, since, error=str(error), error_type=str(kind))
    if isinstance(element, TaskElement):
        if started is None and (due is not None or remaining is not None):
            since = None if due is None else due - retry_policy(entry, element).delay_before(attempt)
            return LaneWait(lane, key, "backoff", attempt, since, due, remaining, handler=element.handler)
        if started is not None:
            timeout = timeout_ms(entry, element)
            until = started + timeout if timeout is not None else None
            return LaneWait(lane, key, "task", attempt, started, until, handler=element.handler)
    elif isinstance(element, WaitSignalElement) and _begun(entry):
        return LaneWait(lane, key, "signal", attempt, started, due, remaining, signal=element.signal)
    elif isinstance(element, DelayElement) and _begun(entry):
        return LaneWait(lane, key, "delay", attempt, started, due, remaining)
    elif isinstance(element, CallProcessElement) and entry.child_id is not None:
        return LaneWait(lane, key, "child", attempt, started, child_id=entry.child_id)
    return LaneWait(lane, key, "ready", attempt)


def _begun(entry: StackEntry) -> bool:
    return entry.started_at_ms is not None or entry.due_at_ms is not None or entry.remaining_ms is not None
