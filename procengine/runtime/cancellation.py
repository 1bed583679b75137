"""Cancellation that a library swallowed.

redis-py can swallow a CancelledError: one that lands inside a connect becomes a ConnectionError, and one
that lands while a command is in flight may be absorbed while the command finishes (it protects the
connection). A loop that goes round again afterwards would then run for ever after its owner cancelled it.
Every long-running loop asks `check_cancelled()` once a round and in its `except` blocks: if the task was
asked to stop (`Task.cancelling()`), it stops.
"""

from __future__ import annotations

import asyncio


def check_cancelled() -> None:
    """Raise CancelledError if the current task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
