"""The handlers and routes of schedules (`/schedules`, node/schedules.py), kept apart from the executions' table;
`routes.ROUTES` takes `SCHEDULE_ROUTES` in."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from procengine.api.schedule_views import (
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleList,
    SchedulePatch,
    ScheduleRequest,
    ScheduleSteer,
    ScheduleTriggered,
    ScheduleView,
)
from procengine.http.body import read_model, read_optional_model
from procengine.http.context import caller, engine
from procengine.http.params import NumberedPageQuery, ReasonQuery, path_id, read_query
from procengine.http.responses import ok
from procengine.http.spec import BASE_PATH, RouteSpec

__all__ = ["SCHEDULE_ROUTES", "SchedulesQuery"]

_S = BASE_PATH + "/schedules"


class SchedulesQuery(NumberedPageQuery):
    """`GET …/schedules?limit=&cursor=`: the tenant's schedules, newest first."""


def _schedule_id(request: web.Request) -> int:
    return path_id(request, "scheduleID", "schedule")


async def create_schedule(request: web.Request) -> web.Response:
    return ok(await engine(request).create_schedule(caller(request), await read_model(request, ScheduleRequest)), 201)


async def list_schedules(request: web.Request) -> web.Response:
    query = read_query(request, SchedulesQuery)
    return ok(await engine(request).schedules(caller(request), limit=query.limit, cursor=query.cursor))


async def get_schedule(request: web.Request) -> web.Response:
    return ok(await engine(request).schedule(caller(request), _schedule_id(request)))


async def update_schedule(request: web.Request) -> web.Response:
    target = _schedule_id(request)
    return ok(await engine(request).update_schedule(caller(request), target, await read_model(request, SchedulePatch)))


async def delete_schedule(request: web.Request) -> web.Response:
    target = _schedule_id(request)
    query = read_query(request, ReasonQuery)
    return ok(await engine(request).delete_schedule(caller(request), target, query.reason))


async def _steer(request: web.Request, verb: str) -> web.Response:
    target = _schedule_id(request)
    order = await read_optional_model(request, ScheduleSteer)
    return ok(await engine(request).steer_schedule(caller(request), target, verb, order))


async def pause_schedule(request: web.Request) -> web.Response:
    return await _steer(request, "pause")


async def resume_schedule(request: web.Request) -> web.Response:
    return await _steer(request, "resume")


async def trigger_schedule(request: web.Request) -> web.Response:
    target = _schedule_id(request)
    order = await read_optional_model(request, ScheduleSteer)
    return ok(await engine(request).trigger_schedule(caller(request), target, order), 202)


SCHEDULE_ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        "POST", _S, create_schedule,
        "Create a schedule: starts of a process (its latest version at each firing, or `version`) at the times a "
        "`cron` expression in `timezone` or an interval (`every`) names, with an overlap and a catch-up policy; "
        "422 listing every problem (bad cron, unknown time zone, both or neither of cron and every, ...)",
        ScheduleCreated, status=201, body="required", request_model=ScheduleRequest, tag="schedules",
    ),
    RouteSpec(
        "GET", _S, list_schedules, "The tenant's schedules, newest first, paged", ScheduleList,
        query_model=SchedulesQuery, tag="schedules",
    ),
    RouteSpec(
        "GET", _S + "/{scheduleID}", get_schedule,
        "A schedule: its spec, state, next fire times and last outcomes (execution, fire time, result, why)",
        ScheduleView, tag="schedules",
    ),
    RouteSpec(
        "PATCH", _S + "/{scheduleID}", update_schedule,
        "Change a schedule (the fields given replace its own; its next fire time is worked out again from now); "
        "422 listing every problem",
        ScheduleView, body="required", request_model=SchedulePatch, tag="schedules",
    ),
    RouteSpec(
        "DELETE", _S + "/{scheduleID}", delete_schedule,
        "Delete a schedule (the executions it started are left alone)", ScheduleDeleted, query_model=ReasonQuery,
        tag="schedules",
    ),
    RouteSpec(
        "POST", _S + "/{scheduleID}/pause", pause_schedule, "Pause a schedule: no firing until it is resumed",
        ScheduleView, body="optional", request_model=ScheduleSteer, tag="schedules",
    ),
    RouteSpec(
        "POST", _S + "/{scheduleID}/resume", resume_schedule,
        "Resume a schedule from its next fire time after now (the times it was paused over are not made up)",
        ScheduleView, body="optional", request_model=ScheduleSteer, tag="schedules",
    ),
    RouteSpec(
        "POST", _S + "/{scheduleID}/trigger", trigger_schedule,
        "Fire a schedule now, by hand, as its own times would (its overlap policy holds); its outcome shows in "
        "`lastOutcomes`",
        ScheduleTriggered, status=202, body="optional", request_model=ScheduleSteer, tag="schedules",
    ),
)  # fmt: skip
