"""Schedules (issue 24, point 3): starts of a process at the times a cron expression or an interval names. Mixed into
`Node`: the API's verbs (create, list, read, update, pause, resume, trigger, delete). The firing is
node/schedule_loop.py's; the times node/schedule_times.py's; the keys store/schedules.py's.

Schedules have no audit stream of their own (as processes): each change is a line of the server's log with `audit`,
the tenant, the schedule, who, why and the request id, and the schedule's hash keeps who changed it last and when.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

from procengine.api.schedule_views import (
    FireOutcome,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleList,
    SchedulePatch,
    ScheduleRequest,
    ScheduleSteer,
    ScheduleTriggered,
    ScheduleView,
)
from procengine.api.service import Caller
from procengine.errors import NotFound, Unavailable, ValidationFailed
from procengine.node.schedule_times import CATCHUP_WINDOW, Spec, check_spec, fire_times, next_after
from procengine.runtime.clock import Clock, iso
from procengine.store.schedules import ScheduleStore

if TYPE_CHECKING:
    from procengine.node.catalog import Catalog

__all__ = ["NEXT_SHOWN", "OUTCOMES_SHOWN", "ScheduleOperations", "member_of", "spec_of"]

log = logging.getLogger(__name__)

NEXT_SHOWN: Final = 5
OUTCOMES_SHOWN: Final = 10
SPEC_FIELDS: Final = (
    "processKey", "version", "processID", "name", "cron", "every", "timezone", "variables", "attributes", "overlap",
    "catchup", "catchupWindow", "startAt", "endAt",
)  # fmt: skip
"""What a schedule's `spec` (JSON, in its hash) holds."""
_SAVE_TRIES: Final = 5


def member_of(schedule_id: int, fire_ms: int, manual: bool = False) -> str:
    """A firing's name in the tenant's claimed firings (and, with the schedule, its start's idempotency key)."""
    return f"{schedule_id}:{fire_ms}{':m' if manual else ''}"


def spec_of(fields: dict[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(fields.get("spec") or "{}")
    return spec


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 19):
        raise ValidationFailed("bad cursor", [f"cursor: {cursor!r} is not a cursor this API gave"])
    return int(cursor)


class _Wakeable(Protocol):
    def wake(self) -> None: ...


class ScheduleOperations:
    """Mixed into `Node`, which provides `schedule_store`, `schedule_loop`, `catalog` and `clock`."""

    schedule_store: ScheduleStore
    schedule_loop: _Wakeable
    """node/schedule_loop.py's loop: woken by a change made here."""
    clock: Clock

    if TYPE_CHECKING:
        catalog: Catalog

    # --- writing ---------------------------------------------------------------------------------------------

    async def create_schedule(self, caller: Caller, request: ScheduleRequest) -> ScheduleCreated:
        now = self.clock.now_ms()
        spec = request.model_dump(exclude_none=True, exclude={"reason", "paused"})
        spec.setdefault("overlap", "skip")
        spec.setdefault("catchup", "none")
        checked = await self._check(caller.tenant, spec, now)
        schedule_id = await self.schedule_store.new_id()
        fields = {
            "spec": json.dumps(spec, separators=(",", ":")),
            "paused": "1" if request.paused else "0",
            "createdAt": iso(now),
            "createdMs": str(now),
            "updatedAt": iso(now),
            "by": caller.by,
        }
        upcoming = None if request.paused else next_after(checked, now)
        await self.schedule_store.save(caller.tenant, schedule_id, fields, upcoming, None)
        self._audit(caller, schedule_id, "schedule-created", request.reason)
        self.schedule_loop.wake()
        return ScheduleCreated(scheduleID=schedule_id, nextFireTimes=self._next_times(checked, upcoming))

    async def update_schedule(self, caller: Caller, schedule_id: int, patch: SchedulePatch) -> ScheduleView:
        changes = patch.model_dump(exclude_unset=True, exclude={"reason"})
        for _ in range(_SAVE_TRIES):  # compare-and-set on the schedule's rev: a change made meanwhile is kept
            fields = await self._fields(caller, schedule_id)
            spec = spec_of(fields)
            if "cron" in changes:
                spec.pop("every", None)
            if "every" in changes:
                spec.pop("cron", None)
            for name, value in changes.items():
                if value is None:
                    spec.pop(name, None)
                else:
                    spec[name] = value
            spec.pop("processID", None)
            now = self.clock.now_ms()
            checked = await self._check(caller.tenant, spec, int(fields.get("createdMs") or now))
            upcoming = None if fields.get("paused") == "1" else next_after(checked, now)
            written = {"spec": json.dumps(spec, separators=(",", ":")), "updatedAt": iso(now), "by": caller.by}
            saved = await self.schedule_store.save(caller.tenant, schedule_id, written, upcoming, fields["rev"])
            if saved == 0:
                raise NotFound(f"schedule {schedule_id} not found")
            if saved > 0:
                self._audit(caller, schedule_id, "schedule-updated", patch.reason, changed=sorted(changes))
                self.schedule_loop.wake()
                return await self.schedule(caller, schedule_id)
        raise Unavailable(f"schedule {schedule_id} changes too often to update now; try again", retry_after_s=1)

    async def steer_schedule(self, caller: Caller, schedule_id: int, verb: str, order: ScheduleSteer) -> ScheduleView:
        """Pause (no firing until resumed; a firing under way goes on) or resume (from the next fire time after now:
        the times it was paused over are not made up)."""
        for _ in range(_SAVE_TRIES):
            fields = await self._fields(caller, schedule_id)
            now = self.clock.now_ms()
            upcoming: int | None = None
            if verb == "resume":
                checked, _ = check_spec(spec_of(fields), int(fields.get("createdMs") or now))
                upcoming = None if checked is None else next_after(checked, now)
            written = {"paused": "1" if verb == "pause" else "0", "updatedAt": iso(now), "by": caller.by}
            saved = await self.schedule_store.save(caller.tenant, schedule_id, written, upcoming, fields["rev"])
            if saved == 0:
                raise NotFound(f"schedule {schedule_id} not found")
            if saved > 0:
                self._audit(caller, schedule_id, f"schedule-{verb}d", order.reason)
                self.schedule_loop.wake()
                return await self.schedule(caller, schedule_id)
        raise Unavailable(f"schedule {schedule_id} changes too often to {verb} now; try again", retry_after_s=1)

    async def trigger_schedule(self, caller: Caller, schedule_id: int, order: ScheduleSteer) -> ScheduleTriggered:
        """A firing now, by hand, as the schedule's own would be (its overlap policy holds), paused or not."""
        await self._fields(caller, schedule_id)
        now = self.clock.now_ms()
        await self.schedule_store.trigger(caller.tenant, member_of(schedule_id, now, manual=True), now)
        self._audit(caller, schedule_id, "schedule-triggered", order.reason)
        self.schedule_loop.wake()
        return ScheduleTriggered(scheduleID=schedule_id, fireTime=iso(now))

    async def delete_schedule(self, caller: Caller, schedule_id: int, reason: str | None = None) -> ScheduleDeleted:
        """Delete it: no more firings (the executions it started are left alone)."""
        if not await self.schedule_store.delete(caller.tenant, schedule_id):
            raise NotFound(f"schedule {schedule_id} not found")
        self._audit(caller, schedule_id, "schedule-deleted", reason)
        return ScheduleDeleted(scheduleID=schedule_id, deleted=True)

    # --- reading ---------------------------------------------------------------------------------------------

    async def schedule(self, caller: Caller, schedule_id: int) -> ScheduleView:
        [(fields, outcomes)] = await self.schedule_store.many(caller.tenant, [schedule_id], OUTCOMES_SHOWN)
        if not fields:
            raise NotFound(f"schedule {schedule_id} not found")
        return self._view(schedule_id, fields, outcomes)

    async def schedules(self, caller: Caller, *, limit: int, cursor: str | None) -> ScheduleList:
        ids = await self.schedule_store.ids(caller.tenant, _cursor(cursor), limit + 1)
        page = ids[:limit]
        rows = await self.schedule_store.many(caller.tenant, page, OUTCOMES_SHOWN)
        items = [self._view(i, fields, outcomes) for i, (fields, outcomes) in zip(page, rows, strict=True) if fields]
        return ScheduleList(items=items, nextCursor=str(page[-1]) if len(ids) > limit else None)

    # --- helpers ---------------------------------------------------------------------------------------------

    async def _fields(self, caller: Caller, schedule_id: int) -> dict[str, str]:
        fields = await self.schedule_store.read(caller.tenant, schedule_id)
        if not fields:
            raise NotFound(f"schedule {schedule_id} not found")
        return fields

    async def _check(self, tenant: str, spec: dict[str, Any], created_ms: int) -> Spec:
        """The spec's times, and the process it names (pinned to a processID when it names a version); every problem
        at once (422)."""
        checked, problems = check_spec(spec, created_ms)
        try:
            if spec.get("version") is not None:
                spec["processID"] = await self.catalog.version_id(tenant, spec["processKey"], spec["version"])
            else:
                await self.catalog.version_id(tenant, spec["processKey"], None)
        except NotFound as exc:
            problems.append(f"processKey: {exc.message}")
        if problems or checked is None:
            raise ValidationFailed("the schedule cannot be kept", problems)
        return checked

    def _next_times(self, checked: Spec | None, upcoming: int | None) -> list[str]:
        if checked is None or upcoming is None:
            return []
        return [iso(upcoming), *(iso(t) for t in fire_times(checked, upcoming, NEXT_SHOWN - 1))]

    def _view(self, schedule_id: int, fields: dict[str, str], outcomes: list[dict[str, str]]) -> ScheduleView:
        spec = spec_of(fields)
        now = self.clock.now_ms()
        checked, _ = check_spec(spec, int(fields.get("createdMs") or now))
        upcoming = int(fields["next"]) if fields.get("next") else None
        paused = fields.get("paused") == "1"
        state = "paused" if paused else ("active" if upcoming is not None else "ended")
        return ScheduleView.model_validate(
            {
                **{name: spec.get(name) for name in SPEC_FIELDS if name not in ("processID",)},
                "scheduleID": schedule_id,
                "timezone": spec.get("timezone") or "UTC",
                "variables": spec.get("variables") or {},
                "catchupWindow": spec.get("catchupWindow") or CATCHUP_WINDOW,
                "state": state,
                "createdAt": fields.get("createdAt", ""),
                "updatedAt": fields.get("updatedAt", ""),
                "by": fields.get("by", ""),
                "nextFireTimes": [] if paused else self._next_times(checked, upcoming),
                "lastOutcomes": [_outcome(entry) for entry in outcomes],
            }
        )

    def _audit(self, caller: Caller, schedule_id: int, event: str, reason: str | None, **more: Any) -> None:
        log.info(
            "schedule %s %s by %s (request %s)%s",
            schedule_id,
            event.removeprefix("schedule-"),
            caller.by,
            caller.request_id,
            f": {reason}" if reason else "",
            extra={
                "audit": event,
                "tenant": caller.tenant,
                "scheduleID": schedule_id,
                "by": caller.by,
                "requestID": caller.request_id,
                "reason": reason,
                **more,
            },
        )


def _outcome(entry: dict[str, str]) -> FireOutcome:
    return FireOutcome(
        fireTime=iso(int(entry.get("f") or 0)),
        result=entry.get("r", "failed"),  # type: ignore[arg-type]
        executionID=int(entry["e"]) if entry.get("e") else None,
        reason=entry.get("w") or None,
        at=iso(int(entry.get("t") or 0)),
        manual=entry.get("m") == "1",
    )
