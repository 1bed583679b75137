"""A schedule's fire times (node/schedule_times.py, no I/O): cron aliases, `every` from its anchor, `startAt` and
`endAt`, the catch-up window, and work bounded by the window however long the downtime."""

from __future__ import annotations

import time

from procengine.node.schedule_times import MAX_CATCHUP, check_spec, fire_times, missed, next_after
from procengine.runtime.clock import iso, parse_iso

T0 = parse_iso("2030-01-01T00:00:00Z")
HOUR = 3_600_000


def test_aliases_and_intervals() -> None:
    daily, problems = check_spec({"cron": "@daily", "timezone": "Asia/Tokyo"}, T0)
    assert daily is not None and problems == []
    assert iso(next_after(daily, T0) or 0) == "2030-01-01T15:00:00.000Z"  # midnight in Tokyo
    every, _ = check_spec({"every": "90m"}, T0 + 1)
    assert every is not None
    assert [iso(t) for t in fire_times(every, T0 + 1, 2)] == ["2030-01-01T01:30:00.001Z", "2030-01-01T03:00:00.001Z"]


def test_bounds_and_problems() -> None:
    bounded, _ = check_spec({"every": "1h", "startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-02T02:00:00Z"}, T0)
    assert bounded is not None
    assert [iso(t) for t in fire_times(bounded, T0, 10)] == [
        "2030-01-02T00:00:00.000Z", "2030-01-02T01:00:00.000Z", "2030-01-02T02:00:00.000Z",
    ]  # fmt: skip
    spec, problems = check_spec({"every": "500ms", "catchupWindow": "soon", "startAt": "x", "endAt": "y"}, T0)
    assert spec is None and len(problems) == 4, problems


def test_catch_up_work_is_bounded_by_the_window() -> None:
    spec, _ = check_spec({"every": "1s", "catchupWindow": "1d"}, T0)
    assert spec is not None
    started = time.perf_counter()
    times, following = missed(spec, T0 + 1000, T0 + 365 * 24 * HOUR)  # a year down
    assert len(times) == MAX_CATCHUP and following == T0 + 365 * 24 * HOUR + 1000
    cron, _ = check_spec({"cron": "* * * * *", "catchupWindow": "2h"}, T0)
    assert cron is not None
    times, _ = missed(cron, T0 + 60_000, T0 + 365 * 24 * HOUR)
    assert len(times) == MAX_CATCHUP and times[-1] == T0 + 365 * 24 * HOUR
    assert time.perf_counter() - started < 5
