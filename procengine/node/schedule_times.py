"""When a schedule fires: its spec checked (every problem at once) and its fire times worked out. No I/O.

A cron expression is read by `cronsim` (healthchecks.io's evaluator) in the schedule's IANA time zone (zoneinfo,
with the `tzdata` package where the machine has no zone files). Daylight saving time as Debian's cron does it, which
is what cronsim implements: a time the clocks skip (Europe/Berlin's 02:30 on the last Sunday of March) fires at the
first minute after the jump (03:00); a daily time the clocks repeat (02:30 on the last Sunday of October) fires
once. An `every` interval counts from its anchor (`startAt`, or when the schedule was created) in absolute time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from procengine.runtime.clock import parse_iso
from procengine.settings import duration_ms

__all__ = ["CATCHUP_WINDOW", "MAX_CATCHUP", "Spec", "check_spec", "fire_times", "missed", "next_after"]

CATCHUP_WINDOW: Final = "1h"
"""How far back `catchup` reaches when the schedule does not say (`catchupWindow`)."""
MAX_CATCHUP: Final = 100
"""The most missed firings `catchup: all` makes up at once (the earliest beyond are skipped)."""
_MIN_EVERY_MS: Final = 1000
_ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class Spec:
    """A checked schedule's times: `cron` (aliases expanded) or `every_ms`, the zone, the bounds in epoch ms."""

    cron: str | None
    every_ms: int | None
    zone: ZoneInfo
    anchor_ms: int
    start_ms: int | None
    end_ms: int | None
    catchup_window_ms: int


def check_spec(fields: dict[str, Any], created_ms: int) -> tuple[Spec | None, list[str]]:
    """The spec of a schedule's stored fields (`cron`, `every`, `timezone`, `startAt`, `endAt`, `catchupWindow`),
    or every problem with them."""
    problems: list[str] = []
    cron, every = fields.get("cron"), fields.get("every")
    if (cron is None) == (every is None):
        problems.append("give exactly one of cron and every" if cron is None else "give cron or every, not both")
    expression: str | None = None
    if cron is not None:
        expression = _ALIASES.get(cron.strip().lower(), cron.strip())
        try:
            CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            problems.append(f"cron: {cron!r} is no cron expression ({exc}; five fields: minute hour day month weekday)")
    every_ms: int | None = None
    if every is not None:
        try:
            every_ms = duration_ms(every)
        except ValueError:
            problems.append(f"every: {every!r} is no duration: write a number and one of ms, s, m, h, d (e.g. 5m)")
        else:
            if every_ms < _MIN_EVERY_MS:
                problems.append(f"every: {every!r} is shorter than 1s")
    zone = ZoneInfo("UTC")
    name = fields.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"timezone: {name!r} is no IANA time zone (e.g. Europe/Berlin, UTC)")
    window_ms = 0
    try:
        window_ms = duration_ms(fields.get("catchupWindow") or CATCHUP_WINDOW)
    except ValueError:
        problems.append(f"catchupWindow: {fields.get('catchupWindow')!r} is no duration (e.g. 1h)")
    start_ms, end_ms = _time(fields, "startAt", problems), _time(fields, "endAt", problems)
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        problems.append("endAt: must be later than startAt")
    if problems:
        return None, problems
    anchor = start_ms if start_ms is not None else created_ms
    return Spec(expression, every_ms, zone, anchor, start_ms, end_ms, window_ms), []


def _time(fields: dict[str, Any], name: str, problems: list[str]) -> int | None:
    text = fields.get(name)
    if text is None or text == "":
        return None
    try:
        return parse_iso(str(text))
    except ValueError:
        problems.append(f"{name}: {text!r} is no ISO-8601 time (e.g. 2026-01-31T09:00:00Z)")
        return None


def _cron_after(spec: Spec, after_ms: int) -> Iterator[int]:
    assert spec.cron is not None
    start = datetime.fromtimestamp(after_ms / 1000, tz=spec.zone)
    for moment in CronSim(spec.cron, start):
        yield int(moment.timestamp() * 1000)


def _times_after(spec: Spec, after_ms: int) -> Iterator[int]:
    """Every fire time strictly after `after_ms` (and at or after `startAt`), ascending, unbounded by `endAt`."""
    if spec.start_ms is not None and after_ms < spec.start_ms:
        after_ms = spec.start_ms - 1
    if spec.every_ms is not None:
        steps = max(0, (after_ms - spec.anchor_ms) // spec.every_ms + 1)
        at = spec.anchor_ms + steps * spec.every_ms
        while True:
            yield at
            at += spec.every_ms
    else:
        # cronsim works in whole minutes: a time inside a minute whose firing is due counts from that minute
        yield from (t for t in _cron_after(spec, after_ms) if t > after_ms)


def next_after(spec: Spec, after_ms: int) -> int | None:
    """The first fire time strictly after `after_ms`; None when there is none before `endAt`."""
    for at in _times_after(spec, after_ms):
        return None if spec.end_ms is not None and at > spec.end_ms else at
    return None  # pragma: no cover - the iterators are unbounded


def fire_times(spec: Spec, after_ms: int, count: int) -> list[int]:
    """Up to `count` fire times strictly after `after_ms`."""
    found: list[int] = []
    at = after_ms
    while len(found) < count:
        following = next_after(spec, at)
        if following is None:
            break
        found.append(following)
        at = following
    return found


def missed(spec: Spec, due_ms: int, now_ms: int) -> tuple[list[int], int | None]:
    """The fire times from `due_ms` (a fire time, at or before `now_ms`) up to `now_ms` that lie within the catch-up
    window (at most the latest MAX_CATCHUP of them: `due_ms` itself only if it is inside the window), and the first
    fire time after `now_ms` (None: none before `endAt`). Work bounded by the window, not by the downtime."""
    start = max(due_ms, now_ms - spec.catchup_window_ms)
    times = [due_ms] if due_ms >= start else []
    at = due_ms if due_ms >= start else start - 1
    if spec.every_ms is not None:  # an interval's times are arithmetic: skip to the last MAX_CATCHUP at once
        at = max(at, now_ms - MAX_CATCHUP * spec.every_ms - 1)
    while True:
        following = next_after(spec, at)
        if following is None or following > now_ms:
            return times[-MAX_CATCHUP:], following
        times.append(following)
        if len(times) > 4 * MAX_CATCHUP:
            times = times[-MAX_CATCHUP:]
        at = following
