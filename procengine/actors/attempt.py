"""One attempt of a task: its handler under the element's timeout, and its output measured for the snapshot.

What a handler returns is data of the user's, of any size. It is measured, not encoded: a first look on the
event loop with a small budget of items, and when that is not enough the rest of the walk in a worker thread,
which gives the loop back every few milliseconds. The walk stops once the output cannot fit in the memory
snapshot, so even a 100 MB output costs no more than the limit's worth of walking, and no other execution on
the node waits for it. An output that does not fit fails the element (LimitExceeded, no retry: the same
handler would return the same); one the codec cannot hold at all is a failure too (Unstorable).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from procengine.engine.outcomes import RunTask
from procengine.engine.sizes import packed_size
from procengine.errors import CodecError, TooManyNodes
from procengine.tasks.registry import Handler, TaskContext

__all__ = ["ON_LOOP_NODES", "Attempt", "run_attempt"]

ON_LOOP_NODES: Final = 20_000
"""Items of an output measured on the event loop (a few ms at most); a bigger output is measured in a thread."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """How an attempt ended: its output and the output's encoded size, or an error and its type."""

    ok: bool
    value: Any = None
    size: int | None = None
    error_type: str = ""
    retry: bool = True


async def run_attempt(handler: Handler | None, step: RunTask, context: TaskContext, memory_limit: int) -> Attempt:
    if handler is None:
        return Attempt(False, f"unknown handler {step.handler!r}", error_type="UnknownHandler")
    try:
        async with asyncio.timeout(step.timeout_ms / 1000 if step.timeout_ms else None):
            value = await handler(step.input, context)
    except TimeoutError:
        return Attempt(False, f"timed out after {step.timeout_ms} ms", error_type="Timeout")
    except Exception as exc:
        # an exception whose class says `retryable = False` fails the element at once, whatever the retry policy
        retry = getattr(exc, "retryable", True) is not False
        # an external task's failure carries the type its worker gave (actors/external.py)
        kind = getattr(exc, "error_type", None) or type(exc).__name__
        return Attempt(False, f"{kind}: {exc}", error_type=str(kind), retry=retry)
    try:
        size = await measure(value, memory_limit)
    except CodecError as exc:
        return Attempt(False, f"the output {exc.message}", error_type="Unstorable")
    if size is None:
        return Attempt(
            False,
            f"the output is over the {memory_limit} bytes the execution's memory snapshot may take",
            error_type="LimitExceeded",
            retry=False,
        )
    return Attempt(True, value, size=size)


async def measure(value: Any, limit: int) -> int | None:
    """`packed_size(value, limit)`, off the event loop when the value is big."""
    try:
        return packed_size(value, limit, max_nodes=ON_LOOP_NODES)
    except TooManyNodes:
        return await asyncio.to_thread(packed_size, value, limit)
