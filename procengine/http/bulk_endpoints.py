"""The handlers and routes of bulk operations (`/bulk-operations`, node/bulk.py), kept apart from the executions'
table; `routes.ROUTES` takes `BULK_ROUTES` in."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from procengine.api.bulk_views import (
    BulkAnswer,
    BulkCreated,
    BulkDryRun,
    BulkItems,
    BulkJobList,
    BulkJobView,
    BulkRequest,
    BulkSteerRequest,
)
from procengine.http.body import read_model, read_optional_model
from procengine.http.context import caller, engine
from procengine.http.params import NumberedPageQuery, PageSize, path_id, read_query
from procengine.http.responses import ok
from procengine.http.spec import BASE_PATH, RouteSpec

__all__ = ["BULK_ROUTES", "BulkItemsQuery", "BulkJobsQuery"]

_B = BASE_PATH + "/bulk-operations"


class BulkJobsQuery(NumberedPageQuery):
    """`GET …/bulk-operations?limit=&cursor=`: the tenant's jobs, newest first."""


class BulkItemsQuery(BaseModel):
    """`GET …/bulk-operations/{jobID}/items?limit=&cursor=`: a job's per-execution outcomes, oldest first."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    limit: PageSize = Field(default=100, description="Page size.")
    cursor: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,19}-[0-9]{1,19}$",
        description="`nextCursor` of the previous page (give it back as it came).",
    )


def _job_id(request: web.Request) -> int:
    return path_id(request, "jobID", "bulk operation")


async def create_bulk_operation(request: web.Request) -> web.Response:
    answer = await engine(request).bulk(caller(request), await read_model(request, BulkRequest))
    return ok(answer, 200 if isinstance(answer, BulkDryRun) else 202)


async def list_bulk_operations(request: web.Request) -> web.Response:
    query = read_query(request, BulkJobsQuery)
    return ok(await engine(request).bulk_jobs(caller(request), limit=query.limit, cursor=query.cursor))


async def get_bulk_operation(request: web.Request) -> web.Response:
    return ok(await engine(request).bulk_job(caller(request), _job_id(request)))


async def bulk_operation_items(request: web.Request) -> web.Response:
    job = _job_id(request)
    query = read_query(request, BulkItemsQuery)
    return ok(await engine(request).bulk_items(caller(request), job, limit=query.limit, cursor=query.cursor))


async def _steer(request: web.Request, verb: str) -> web.Response:
    job = _job_id(request)
    order = await read_optional_model(request, BulkSteerRequest)
    return ok(await engine(request).bulk_steer(caller(request), job, verb, order))


async def pause_bulk_operation(request: web.Request) -> web.Response:
    return await _steer(request, "pause")


async def resume_bulk_operation(request: web.Request) -> web.Response:
    return await _steer(request, "resume")


async def cancel_bulk_operation(request: web.Request) -> web.Response:
    return await _steer(request, "cancel")


async def undo_bulk_operation(request: web.Request) -> web.Response:
    job = _job_id(request)
    order = await read_optional_model(request, BulkSteerRequest)
    return ok(await engine(request).bulk_undo(caller(request), job, order), 202)


BULK_ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        "POST", _B, create_bulk_operation,
        "Run an action (pause, resume, cancel, signal, retry, edit-variables, migrate) over the executions a filter "
        "matches or a list of ids, as a durable job (202: follow it at …/bulk-operations/{jobID}); with dryRun, "
        "answer how many match and a sample, touching nothing (200)",
        BulkAnswer, status=202, also=(200,), body="required", request_model=BulkRequest, tag="bulk",
    ),
    RouteSpec(
        "GET", _B, list_bulk_operations, "The tenant's bulk operations, newest first, paged", BulkJobList,
        query_model=BulkJobsQuery, tag="bulk",
    ),
    RouteSpec(
        "GET", _B + "/{jobID}", get_bulk_operation,
        "A bulk operation: status, matched, done, refused by reason, failed", BulkJobView, tag="bulk",
    ),
    RouteSpec(
        "GET", _B + "/{jobID}/items", bulk_operation_items,
        "A bulk operation's per-execution outcomes (done, refused with the reason, failed), oldest first, paged",
        BulkItems, query_model=BulkItemsQuery, tag="bulk",
    ),
    RouteSpec(
        "POST", _B + "/{jobID}/pause", pause_bulk_operation,
        "Pause a running bulk operation (within about a second: the items in flight finish)",
        BulkJobView, body="optional", request_model=BulkSteerRequest, errors=(409,), tag="bulk",
    ),
    RouteSpec(
        "POST", _B + "/{jobID}/resume", resume_bulk_operation,
        "Resume a paused bulk operation from where it stopped", BulkJobView, body="optional",
        request_model=BulkSteerRequest, errors=(409,), tag="bulk",
    ),
    RouteSpec(
        "POST", _B + "/{jobID}/cancel", cancel_bulk_operation,
        "Cancel a running or paused bulk operation (what it did stays done)", BulkJobView, body="optional",
        request_model=BulkSteerRequest, errors=(409,), tag="bulk",
    ),
    RouteSpec(
        "POST", _B + "/{jobID}/undo", undo_bulk_operation,
        "Undo an ended bulk pause: a resume job over exactly the executions it paused that are still paused by it "
        "(one resumed by hand, or paused again since, is refused and left alone); 409 while it runs or once undone",
        BulkCreated, status=202, body="optional", request_model=BulkSteerRequest, errors=(409,), tag="bulk",
    ),
)  # fmt: skip
