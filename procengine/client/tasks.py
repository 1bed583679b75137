"""The client's external task methods (`/tasks/…`, docs/workers.md): mixed into `AsyncClient` (`AsyncTasks`) and
`Client` (`Tasks`). A worker in Python is `procengine worker` (procengine/worker/), built on these.

    for task in engine.fetch_tasks(["payments"], worker_id="w1", max=8, wait_ms=10_000).tasks:
        engine.complete_task(task.taskId, task.lockToken, {"charged": task.input["amount"]})

A refused complete, fail or extend is a `Conflict` whose `code` says why: TASK_LOCK_STALE (the lock expired and
another worker took the task), TASK_LOCK_REVOKED (a pause past its grace, a cancel, a timeout), TASK_ALREADY_SETTLED.
The client's `timeout` bounds each request: give it more than `wait_ms`.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from procengine.api.task_views import (
    ExtendResult,
    FetchRequest,
    FetchResult,
    QueueList,
    SettleResult,
    TaskCompleteRequest,
    TaskExtendRequest,
    TaskFailRequest,
)
from procengine.client.transport import AsyncTransport, checked_body

__all__ = ["AsyncTasks", "Tasks"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
_TASKS = "/tasks"


def _task(task_id: str, verb: str) -> str:
    return f"{_TASKS}/{task_id}/{verb}"


class AsyncTasks(AsyncTransport):
    async def fetch_tasks(
        self, queues: Sequence[str], *, worker_id: str, max: int = 1, lock_ms: int = 30_000, wait_ms: int = 0
    ) -> FetchResult:
        """Lock up to `max` tasks of the tenant's `queues` for `lock_ms`, waiting up to `wait_ms` for one (not retried:
        a lost answer's locks expire and the tasks are offered again)."""
        value = {"queues": list(queues), "workerId": worker_id, "max": max, "lockMs": lock_ms, "waitMs": wait_ms}
        return await self._data(
            "POST", _TASKS + "/fetch", FetchResult, body=checked_body(FetchRequest, value), retry=False
        )

    async def complete_task(self, task_id: str, lock_token: str, output: Any = None) -> SettleResult:
        """Complete a locked task with its output (the element's output, as a handler's return value)."""
        body = checked_body(TaskCompleteRequest, {"lockToken": lock_token, "output": output})
        return await self._data("POST", _task(task_id, "complete"), SettleResult, body=body, retry=False)

    async def fail_task(
        self, task_id: str, lock_token: str, error: str, *, type: str = "TaskFailed", retryable: bool = True
    ) -> SettleResult:
        """Fail a locked task's attempt: `type` is the error type a catch matches; `retryable=False` fails the
        element at once whatever its retry policy."""
        value = {"lockToken": lock_token, "error": error, "type": type, "retryable": retryable}
        body = checked_body(TaskFailRequest, value)
        return await self._data("POST", _task(task_id, "fail"), SettleResult, body=body, retry=False)

    async def extend_task(self, task_id: str, lock_token: str, lock_ms: int) -> ExtendResult:
        """Hold a task's lock `lock_ms` from now."""
        body = checked_body(TaskExtendRequest, {"lockToken": lock_token, "lockMs": lock_ms})
        return await self._data("POST", _task(task_id, "extend"), ExtendResult, body=body)

    async def task_queues(self) -> QueueList:
        """The tenant's queues: depth, oldest waiting age, tasks in flight, locks expired."""
        return await self._data("GET", _TASKS + "/queues", QueueList)


class Tasks:
    """The blocking forms of `AsyncTasks`'s methods."""

    if TYPE_CHECKING:
        _async: AsyncTasks

        def _run(self, coroutine: Coroutine[Any, Any, T]) -> T: ...

    def fetch_tasks(
        self, queues: Sequence[str], *, worker_id: str, max: int = 1, lock_ms: int = 30_000, wait_ms: int = 0
    ) -> FetchResult:
        return self._run(
            self._async.fetch_tasks(queues, worker_id=worker_id, max=max, lock_ms=lock_ms, wait_ms=wait_ms)
        )

    def complete_task(self, task_id: str, lock_token: str, output: Any = None) -> SettleResult:
        return self._run(self._async.complete_task(task_id, lock_token, output))

    def fail_task(
        self, task_id: str, lock_token: str, error: str, *, type: str = "TaskFailed", retryable: bool = True
    ) -> SettleResult:
        return self._run(self._async.fail_task(task_id, lock_token, error, type=type, retryable=retryable))

    def extend_task(self, task_id: str, lock_token: str, lock_ms: int) -> ExtendResult:
        return self._run(self._async.extend_task(task_id, lock_token, lock_ms))

    def task_queues(self) -> QueueList:
        return self._run(self._async.task_queues())
