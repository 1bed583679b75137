"""The built-in task handlers every server has: echo, sleep, fail, and http (to the hosts --http-allow names)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

from procengine.tasks.http import http_handler
from procengine.tasks.registry import HandlerRegistry, TaskFailed

__all__ = ["builtin_handlers"]


async def _echo(task_input: dict[str, Any]) -> Any:
    return task_input


async def _sleep(task_input: dict[str, Any]) -> Any:
    ms = task_input.get("ms", 0)
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0:
        raise TaskFailed(f"sleep needs a non-negative number `ms`, got {ms!r}")
    await asyncio.sleep(ms / 1000)
    return {"slept": ms}


async def _fail(task_input: dict[str, Any]) -> Any:
    raise TaskFailed(str(task_input.get("message", "failed on purpose")))


def builtin_handlers(http_allow: Collection[str] = ()) -> HandlerRegistry:
    """The built-ins; `http` reaches only the hosts of `http_allow` (none: every request is refused, and says
    which flag allows it)."""
    registry = HandlerRegistry()
    registry.register("http", http_handler(http_allow))
    registry.register("echo", _echo)
    registry.register("sleep", _sleep)
    registry.register("fail", _fail)
    return registry
