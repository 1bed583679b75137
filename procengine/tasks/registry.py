"""The task handler registry: async Python functions a `task` element calls by name.

Register with the decorator in a module that `procengine serve --handlers pkg.module` (or `procengine worker
--handlers pkg.module`, for tasks with a `queue`) imports; a plain (not async) function runs in a worker thread:

    from procengine.tasks import task

    @task("charge-card")
    async def charge(input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
        ...  # ctx.idempotency_key is stable across re-runs of the same attempt

Tasks run at least once: a task cut short by a crash or a pause runs again, so handlers should be
idempotent (use `ctx.idempotency_key`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["HandlerRegistry", "TaskContext", "TaskFailed", "default_registry", "task"]


@dataclass(frozen=True, slots=True)
class TaskContext:
    execution_id: int
    element_key: str
    attempt: int
    execution_order: int = 0
    """The run of the element: a new one for each pass of a loop and each for-each iteration."""
    path: str = ""
    """The lane the task runs in: its thread's key, or a parallel branch or for-each iteration (main/ship[3])."""

    @property
    def idempotency_key(self) -> str:
        """The same for every re-run of one attempt of one run of the element (a crash, a pause past its grace),
        different for another attempt, another pass of a loop and another for-each iteration."""
        return f"{self.execution_id}:{self.element_key}:{self.execution_order}:{self.attempt}"


class TaskFailed(Exception):
    """Raised by a handler to fail its task with a message (retried per the element's policy)."""


Handler = Callable[[dict[str, Any], TaskContext], Awaitable[Any]]
UserHandler = Callable[..., Awaitable[Any]]
_F = TypeVar("_F", bound=Callable[..., Any])


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, fn: UserHandler | Callable[..., Any]) -> None:
        """Register `fn` under `name`: an async function, or a plain one, which runs in a worker thread (the event
        loop's default executor; `procengine worker` sizes it to its concurrency) so that it blocks nothing."""
        if not callable(fn):
            raise TypeError(f"handler {name!r} must be a function")
        if name in self._handlers:
            raise ValueError(f"handler {name!r} is already registered")
        self._handlers[name] = _adapt(fn) if inspect.iscoroutinefunction(fn) else _threaded(fn)

    def task(self, name: str) -> Callable[[_F], _F]:
        def decorate(fn: _F) -> _F:
            self.register(name, fn)
            return fn

        return decorate

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def merged(self, other: HandlerRegistry) -> HandlerRegistry:
        merged = HandlerRegistry()
        merged._handlers = {**self._handlers, **other._handlers}
        return merged


def _adapt(fn: UserHandler) -> Handler:
    """Accept `async def f(input)` as well as `async def f(input, ctx)`."""
    if len(inspect.signature(fn).parameters) >= 2:
        return fn

    async def call(task_input: dict[str, Any], ctx: TaskContext) -> Any:
        return await fn(task_input)

    return call


def _threaded(fn: Callable[..., Any]) -> Handler:
    """A plain function as a handler: called in a worker thread, with the context if it takes two arguments."""
    with_context = len(inspect.signature(fn).parameters) >= 2

    async def call(task_input: dict[str, Any], ctx: TaskContext) -> Any:
        if with_context:
            return await asyncio.to_thread(fn, task_input, ctx)
        return await asyncio.to_thread(fn, task_input)

    return call


default_registry = HandlerRegistry()
"""Where `@task` registers; `serve` merges it with the built-ins after importing --handlers modules."""

task = default_registry.task
