"""The client's schedules (`/schedules`): mixed into `AsyncClient` (`AsyncSchedules`) and `Client` (`Schedules`).

created = engine.create_schedule("order-fulfilment", cron="0 9 * * 1-5", timezone="Europe/Berlin")
engine.schedule(created.scheduleID).nextFireTimes     # the next five
engine.trigger_schedule(created.scheduleID)            # once now, by hand
engine.pause_schedule(created.scheduleID, reason="holidays")
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

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
from procengine.client.transport import AsyncTransport, checked_body, page_params

__all__ = ["AsyncSchedules", "Schedules"]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
_S = "/schedules"
_SPEC_NAMES = {
    "cron": "cron", "every": "every", "timezone": "timezone", "variables": "variables", "attributes": "attributes",
    "overlap": "overlap", "catchup": "catchup", "catchup_window": "catchupWindow", "start_at": "startAt",
    "end_at": "endAt", "version": "version", "reason": "reason",
}  # fmt: skip
"""The keyword arguments of a schedule's spec, and their names in a body."""


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {_SPEC_NAMES[name]: value for name, value in fields.items() if value is not None}


class AsyncSchedules(AsyncTransport):
    async def create_schedule(
        self,
        process_key: str,
        *,
        cron: str | None = None,
        every: str | None = None,
        timezone: str | None = None,
        variables: Mapping[str, Any] | None = None,
        attributes: Mapping[str, Any] | None = None,
        overlap: str | None = None,
        catchup: str | None = None,
        catchup_window: str | None = None,
        start_at: str | None = None,
        end_at: str | None = None,
        version: int | None = None,
        name: str | None = None,
        paused: bool = False,
        reason: str | None = None,
    ) -> ScheduleCreated:
        """A schedule that starts `process_key` at the times `cron` (in `timezone`) or `every` names (exactly one);
        overlap skip | buffer-one | allow | cancel-previous, catchup none | latest | all (within `catchup_window`)."""
        given = _given(
            dict(cron=cron, every=every, timezone=timezone, variables=None if variables is None else dict(variables),
                 attributes=None if attributes is None else dict(attributes), overlap=overlap, catchup=catchup,
                 catchup_window=catchup_window, start_at=start_at, end_at=end_at, version=version, reason=reason)
        )  # fmt: skip
        given["processKey"] = process_key
        if name is not None:
            given["name"] = name
        if paused:
            given["paused"] = True
        return await self._data("POST", _S, ScheduleCreated, body=checked_body(ScheduleRequest, given), retry=False)

    async def schedules(self, *, limit: int | None = None, cursor: str | None = None) -> ScheduleList:
        """A page of the tenant's schedules, newest first."""
        return await self._data("GET", _S, ScheduleList, params=page_params(limit, cursor))

    async def schedule(self, schedule_id: int) -> ScheduleView:
        """A schedule: its spec, state, next fire times and last outcomes."""
        return await self._data("GET", f"{_S}/{int(schedule_id)}", ScheduleView)

    async def update_schedule(self, schedule_id: int, **changes: Any) -> ScheduleView:
        """Change a schedule: keyword arguments as `create_schedule` takes them (cron=, every=, timezone=, ...)."""
        unknown = sorted(set(changes) - set(_SPEC_NAMES))
        if unknown:
            raise TypeError(f"update_schedule() got unexpected keyword arguments: {', '.join(unknown)}")
        body = checked_body(SchedulePatch, _given(changes))
        return await self._data("PATCH", f"{_S}/{int(schedule_id)}", ScheduleView, body=body)

    async def _steer_schedule(
        self, schedule_id: int, verb: str, reason: str | None, model: type[M], retry: bool = True
    ) -> M:
        body = None if reason is None else checked_body(ScheduleSteer, {"reason": reason})
        return await self._data("POST", f"{_S}/{int(schedule_id)}/{verb}", model, body=body, retry=retry)

    async def pause_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleView:
        return await self._steer_schedule(schedule_id, "pause", reason, ScheduleView)

    async def resume_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleView:
        return await self._steer_schedule(schedule_id, "resume", reason, ScheduleView)

    async def trigger_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleTriggered:
        """Fire it once now (not retried on a lost answer: a retry would fire it again)."""
        return await self._steer_schedule(schedule_id, "trigger", reason, ScheduleTriggered, retry=False)

    async def delete_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleDeleted:
        params = {} if reason is None else {"reason": reason}
        return await self._data("DELETE", f"{_S}/{int(schedule_id)}", ScheduleDeleted, params=params)


class Schedules:
    """The blocking forms of `AsyncSchedules`'s methods."""

    if TYPE_CHECKING:
        _async: AsyncSchedules

        def _run(self, coroutine: Coroutine[Any, Any, T]) -> T: ...

    def create_schedule(self, process_key: str, **spec: Any) -> ScheduleCreated:
        return self._run(self._async.create_schedule(process_key, **spec))

    def schedules(self, *, limit: int | None = None, cursor: str | None = None) -> ScheduleList:
        return self._run(self._async.schedules(limit=limit, cursor=cursor))

    def schedule(self, schedule_id: int) -> ScheduleView:
        return self._run(self._async.schedule(schedule_id))

    def update_schedule(self, schedule_id: int, **changes: Any) -> ScheduleView:
        return self._run(self._async.update_schedule(schedule_id, **changes))

    def pause_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleView:
        return self._run(self._async.pause_schedule(schedule_id, reason))

    def resume_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleView:
        return self._run(self._async.resume_schedule(schedule_id, reason))

    def trigger_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleTriggered:
        return self._run(self._async.trigger_schedule(schedule_id, reason))

    def delete_schedule(self, schedule_id: int, reason: str | None = None) -> ScheduleDeleted:
        return self._run(self._async.delete_schedule(schedule_id, reason))
