"""The bodies and answers of schedules (`/schedules`, issue 24 point 3): starts of a process at the times a cron
expression or an interval names, kept by the engine (node/schedules.py, node/schedule_loop.py)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from procengine.api.views import Storable

__all__ = [
    "OVERLAP_POLICIES",
    "CatchupPolicy",
    "FireOutcome",
    "OverlapPolicy",
    "ScheduleCreated",
    "ScheduleDeleted",
    "ScheduleList",
    "SchedulePatch",
    "ScheduleRequest",
    "ScheduleSteer",
    "ScheduleTriggered",
    "ScheduleView",
]

OverlapPolicy = Literal["skip", "buffer-one", "allow", "cancel-previous"]
OVERLAP_POLICIES: Final = ("skip", "buffer-one", "allow", "cancel-previous")
CatchupPolicy = Literal["none", "latest", "all"]
Result = Literal["started", "skipped-overlap", "skipped-missed", "buffered", "failed"]

_NAME = r"^[A-Za-z0-9_.:\-]{1,100}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Spec(_Request):
    """What a schedule starts, and when (the fields `POST` takes and `PATCH` may change)."""

    cron: str | None = Field(default=None, min_length=1, max_length=200)
    """A five-field cron expression (minute hour day-of-month month day-of-week; `@daily` and the like too), read in
    `timezone`."""
    every: str | None = Field(default=None, min_length=2, max_length=20)
    """An interval written as `--retention` takes a duration: `30s`, `5m`, `12h`, `1d` (from `startAt`, or from
    when the schedule was created)."""
    timezone: str | None = Field(default=None, min_length=1, max_length=100)
    """An IANA time zone (`Europe/Berlin`); default UTC. Daylight saving time as cron does it: a time the clocks
    skip fires at the first minute after the jump; a time they repeat fires once."""
    variables: dict[str, Storable] | None = None
    attributes: dict[str, Any] | None = Field(default=None, max_length=50)
    overlap: OverlapPolicy | None = None
    catchup: CatchupPolicy | None = None
    catchupWindow: str | None = Field(default=None, min_length=2, max_length=20)
    """How far back `catchup: all` (or `latest`) reaches after downtime (a duration; default `1h`)."""
    startAt: str | None = None
    """ISO-8601: no firing before."""
    endAt: str | None = None
    """ISO-8601: no firing after."""
    reason: str | None = Field(default=None, max_length=1000)


class ScheduleRequest(_Spec):
    """`POST …/schedules`: a process by `processKey` (its latest version at each firing, or `version`), and exactly
    one of `cron` and `every`."""

    processKey: str = Field(min_length=1, max_length=200)
    version: int | None = Field(default=None, ge=1)
    name: str | None = Field(default=None, pattern=_NAME)
    """An optional label (shown in lists)."""
    paused: bool = False


class SchedulePatch(_Spec):
    """`PATCH …/schedules/{scheduleID}`: the fields given replace the schedule's (`cron` replaces `every` and the
    other way round); its next fire time is worked out again from now."""

    version: int | None = Field(default=None, ge=1)


class ScheduleSteer(_Request):
    """`POST …/schedules/{id}/pause|resume|trigger`: optional."""

    reason: str | None = Field(default=None, max_length=1000)


class FireOutcome(_View):
    """One firing: when it was due, what came of it."""

    fireTime: str
    result: Result
    executionID: int | None = None
    reason: str | None = None
    at: str
    """When the outcome was written."""
    manual: bool = False
    """Triggered by hand (`…/trigger`), not by the schedule's times."""


class ScheduleView(_View):
    scheduleID: int
    name: str | None = None
    processKey: str
    version: int | None = None
    cron: str | None = None
    every: str | None = None
    timezone: str
    variables: dict[str, Any]
    attributes: dict[str, Any] | None = None
    overlap: OverlapPolicy
    catchup: CatchupPolicy
    catchupWindow: str
    startAt: str | None = None
    endAt: str | None = None
    state: Literal["active", "paused", "ended"]
    createdAt: str
    updatedAt: str
    by: str
    nextFireTimes: list[str]
    """The next (up to 5) times it fires, unless it is paused."""
    lastOutcomes: list[FireOutcome]
    """The last firings, newest first."""


class ScheduleList(_View):
    items: list[ScheduleView]
    nextCursor: str | None = None


class ScheduleCreated(_View):
    scheduleID: int
    nextFireTimes: list[str]


class ScheduleTriggered(_View):
    scheduleID: int
    fireTime: str
    """The time the manual firing is keyed by (now): its outcome shows in `lastOutcomes`."""


class ScheduleDeleted(_View):
    scheduleID: int
    deleted: bool
