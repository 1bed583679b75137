"""The handlers and routes of external task workers (`/tasks/…`, node/task_queues.py, docs/workers.md);
`routes.ROUTES` takes `TASK_ROUTES` in."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from procengine.api.task_views import (
    ExtendResult,
    FetchRequest,
    FetchResult,
    QueueList,
    SettleResult,
    TaskCompleteRequest,
    TaskExtendRequest,
    TaskFailRequest,
    TaskID,
)
from procengine.errors import NotFound
from procengine.http.body import read_model
from procengine.http.context import caller, engine
from procengine.http.responses import ok
from procengine.http.spec import BASE_PATH, RouteSpec

__all__ = ["TASK_ROUTES"]

_T = BASE_PATH + "/tasks"
_TASK_ID: Final = TypeAdapter(TaskID)


def _task_id(request: web.Request) -> str:
    text = request.match_info["taskID"]
    try:
        return _TASK_ID.validate_python(text)
    except ValidationError:
        raise NotFound(f"task {text} not found") from None


async def fetch_tasks(request: web.Request) -> web.Response:
    return ok(await engine(request).fetch_tasks(caller(request), await read_model(request, FetchRequest)))


async def complete_task(request: web.Request) -> web.Response:
    task = _task_id(request)
    body = await read_model(request, TaskCompleteRequest)
    return ok(await engine(request).complete_task(caller(request), task, body))


async def fail_task(request: web.Request) -> web.Response:
    task = _task_id(request)
    body = await read_model(request, TaskFailRequest)
    return ok(await engine(request).fail_task(caller(request), task, body))


async def extend_task(request: web.Request) -> web.Response:
    task = _task_id(request)
    body = await read_model(request, TaskExtendRequest)
    return ok(await engine(request).extend_task(caller(request), task, body))


async def list_task_queues(request: web.Request) -> web.Response:
    return ok(await engine(request).task_queues(caller(request)))


TASK_ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        "POST", _T + "/fetch", fetch_tasks,
        "Lock up to `max` tasks of the caller's tenant's queues for `lockMs`, waiting up to `waitMs` for one (a long "
        "poll); an empty list when none came",
        FetchResult, body="required", request_model=FetchRequest, tag="tasks",
    ),
    RouteSpec(
        "POST", _T + "/{taskID}/complete", complete_task,
        "Complete a locked task with its output; 409 TASK_LOCK_STALE, TASK_LOCK_REVOKED or TASK_ALREADY_SETTLED "
        "when the lock does not allow it (nothing changed)",
        SettleResult, body="required", request_model=TaskCompleteRequest, errors=(409,), tag="tasks",
    ),
    RouteSpec(
        "POST", _T + "/{taskID}/fail", fail_task,
        "Fail a locked task's attempt with an error and its type (retried per the element's policy unless "
        "`retryable` is false); 409 as for complete",
        SettleResult, body="required", request_model=TaskFailRequest, errors=(409,), tag="tasks",
    ),
    RouteSpec(
        "POST", _T + "/{taskID}/extend", extend_task,
        "Hold a task's lock `lockMs` from now; 409 as for complete",
        ExtendResult, body="required", request_model=TaskExtendRequest, errors=(409,), tag="tasks",
    ),
    RouteSpec(
        "GET", _T + "/queues", list_task_queues,
        "The tenant's task queues: depth, oldest waiting age, tasks in flight, locks expired",
        QueueList, tag="tasks",
    ),
)  # fmt: skip
