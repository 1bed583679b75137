"""Task handlers for tests that need a node to die in the middle of an element:
`procengine serve --handlers tests.support.crash_handlers` from the repository root."""

from __future__ import annotations

import os
import signal
from typing import Any

from procengine.tasks import task


@task("die")
async def die(task_input: dict[str, Any]) -> dict[str, Any]:
    """Kill the node that runs it, as a crash in a native extension would (no cleanup, no last write)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}  # not reached
