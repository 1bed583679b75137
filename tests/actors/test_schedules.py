"""Schedules (issue 24, point 3), on real nodes against the suite's Redis, time driven by a clock the test sets: a
schedule is refused with every problem listed; another tenant's is 404 for every verb; it fires at its times (cron in
its time zone, through daylight saving time changes; `every`), each firing exactly once though two nodes race for it
and one dies mid-firing; the overlap and catch-up policies; pause, resume, trigger, update, delete; its status shows
the next fire times and the last outcomes.

The nodes' own schedule loops are stopped: the test calls `tick()`, the loop's one pass, when it has moved time."""

from __future__ import annotations

import asyncio
import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from procengine.api.schedule_views import SchedulePatch, ScheduleRequest, ScheduleSteer, ScheduleView
from procengine.api.service import Caller
from procengine.errors import NotFound, TooManyRequests, ValidationFailed
from procengine.node.node import Node
from procengine.node.schedule_loop import BUFFER_RECHECK_MS, LEASE_MS, MISFIRE_GRACE_MS
from procengine.runtime.clock import iso, parse_iso
from tests.support.nodes import CALLER, EngineFactory, crash, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

QUICK = definition({"key": "say", "type": "set-variable", "set": {"said": "true"}, "next": "done"},
                   {"key": "done", "type": "end"}, key="quick")  # fmt: skip
WAITS = definition({"key": "w", "type": "wait-signal", "signal": "go"}, key="waits")
OTHER = Caller(tenant="other", by="other", request_id="req-other")
MINUTE = 60_000
YEAR = datetime.now(UTC).year + 1
"""The tests' times are next year's: a finished execution's keys expire at the engine clock's time plus the
retention, which Redis reads on its own clock."""
JAN = f"{YEAR}-01-01T00:00:00Z"


def _last_sunday(month: int) -> int:
    """The day of the month of `month`'s last Sunday in YEAR (when the EU changes its clocks)."""
    weeks = calendar.monthcalendar(YEAR, month)
    return max(week[calendar.SUNDAY] for week in weeks)


def _at(month: int, day: int, hour: int, minute: int = 0, *, days: int = 0) -> str:
    """A time of YEAR (UTC), `days` later, as the API writes it."""
    return iso(int((datetime(YEAR, month, day, hour, minute, tzinfo=UTC) + timedelta(days=days)).timestamp() * 1000))


class SetClock:
    """A clock that stands still where the test puts it."""

    def __init__(self, text: str) -> None:
        self.at = parse_iso(text)

    def now_ms(self) -> int:
        return self.at

    def advance(self, ms: int) -> None:
        self.at += ms


async def _node(make_engine: EngineFactory, clock: SetClock) -> Node:
    return await make_engine(clock=clock, fire_schedules=False)  # the test drives the loop (`tick`)


async def _schedule(engine: Node, process: dict[str, Any] = QUICK, **body: Any) -> int:
    await engine.register_process(CALLER, process)
    created = await engine.create_schedule(CALLER, ScheduleRequest(processKey=process["key"], **body))
    return created.scheduleID


async def _view(engine: Node, schedule_id: int) -> ScheduleView:
    return await engine.schedule(CALLER, schedule_id)


async def _executions(engine: Node, key: str = "quick") -> list[int]:
    page = await engine.list_executions(CALLER, status=None, process_id=None, limit=100, cursor=None)
    return [item.executionID for item in page.items]


def _results(view: ScheduleView) -> list[str]:
    """Oldest first."""
    return [outcome.result for outcome in reversed(view.lastOutcomes)]


# --- refusals --------------------------------------------------------------------------------------------------


async def test_a_bad_schedule_is_refused_with_every_problem(make_engine: EngineFactory) -> None:
    engine = await _node(make_engine, SetClock(JAN))
    await engine.register_process(CALLER, QUICK)
    bad = ScheduleRequest(processKey="quick", cron="61 * * * *", every="5m", timezone="Mars/Olympus")
    with pytest.raises(ValidationFailed) as refused:
        await engine.create_schedule(CALLER, bad)
    problems = " | ".join(refused.value.problems)
    assert "give cron or every, not both" in problems
    assert "cron: '61 * * * *' is no cron expression" in problems
    assert "timezone: 'Mars/Olympus' is no IANA time zone" in problems
    with pytest.raises(ValidationFailed) as refused:
        await engine.create_schedule(CALLER, ScheduleRequest(processKey="nope", every="1x", endAt="soon"))
    assert len(refused.value.problems) == 3, refused.value.problems  # every, endAt, the unknown process
    with pytest.raises(ValidationFailed, match="cannot be kept") as refused:
        await engine.create_schedule(CALLER, ScheduleRequest(processKey="quick"))
    assert refused.value.problems == ["give exactly one of cron and every"]
    assert (await engine.schedules(CALLER, limit=10, cursor=None)).items == []


async def test_another_tenants_schedule_is_not_found_for_every_verb(make_engine: EngineFactory) -> None:
    engine = await _node(make_engine, SetClock(JAN))
    schedule_id = await _schedule(engine, every="5m")
    steer = ScheduleSteer()
    for attempt in (
        engine.schedule(OTHER, schedule_id),
        engine.steer_schedule(OTHER, schedule_id, "pause", steer),
        engine.steer_schedule(OTHER, schedule_id, "resume", steer),
        engine.trigger_schedule(OTHER, schedule_id, steer),
        engine.update_schedule(OTHER, schedule_id, SchedulePatch(every="1m")),
        engine.delete_schedule(OTHER, schedule_id),
    ):
        with pytest.raises(NotFound):
            await attempt
    assert (await engine.schedules(OTHER, limit=10, cursor=None)).items == []
    assert (await _view(engine, schedule_id)).state == "active"


# --- firing ----------------------------------------------------------------------------------------------------


async def test_an_interval_fires_at_its_times_and_says_so(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, every="5m", variables={"n": 1})
    view = await _view(engine, schedule_id)
    assert view.nextFireTimes == [f"{YEAR}-01-01T00:{m:02d}:00.000Z" for m in (5, 10, 15, 20, 25)]
    await engine.schedule_runner.tick()
    assert await _executions(engine) == []  # not due yet
    clock.advance(5 * MINUTE)
    await engine.schedule_runner.tick()
    [execution_id] = await _executions(engine)
    await wait_status(engine, execution_id, "completed")
    view = await _view(engine, schedule_id)
    [outcome] = view.lastOutcomes
    assert (outcome.result, outcome.executionID, outcome.fireTime) == ("started", execution_id, view.createdAt[:14]
                                                                        + "05:00.000Z")  # fmt: skip
    assert view.nextFireTimes[0] == f"{YEAR}-01-01T00:10:00.000Z"
    await engine.schedule_runner.tick()  # nothing more is due: nothing more starts
    assert len(await _executions(engine)) == 1


async def test_a_firing_happens_once_though_two_nodes_race_and_one_dies(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    first, second = await _node(make_engine, clock), await _node(make_engine, clock)
    schedule_id = await _schedule(first, every="1m")
    clock.advance(MINUTE)
    # both see it due at once: one claim wins
    await asyncio.gather(first.schedule_runner.tick(), second.schedule_runner.tick())
    assert len(await _executions(first)) == 1
    # the next one: the first node claims it and takes it, then dies before it starts anything
    clock.advance(MINUTE)
    store, fire_ms = first.schedule_store, clock.now_ms()
    [(due_id, due_ms)] = await store.due("default", fire_ms, 10)
    await first.schedule_runner._claim("default", due_id, due_ms, fire_ms)
    assert await store.take("default", f"{schedule_id}:{fire_ms}", fire_ms, LEASE_MS) is not None
    await crash(first)
    await second.schedule_runner.tick()  # its lease holds: the second node waits
    assert len(await _executions(second)) == 1
    clock.advance(LEASE_MS + 1)  # the lease lapses: the second node fires it (and the one due meanwhile)
    await second.schedule_runner.tick()
    executions = await _executions(second)
    outcomes = (await _view(second, schedule_id)).lastOutcomes
    fired = sorted(o.fireTime for o in outcomes if o.result == "started")
    assert len(fired) == len(set(fired)) == len(executions), (fired, executions)
    assert iso(fire_ms) in fired


async def test_a_firing_whose_node_died_after_starting_starts_nothing_more(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    first, second = await _node(make_engine, clock), await _node(make_engine, clock)
    schedule_id = await _schedule(first, every="1h")
    clock.advance(60 * MINUTE)
    fire_ms = clock.now_ms()
    member = f"{schedule_id}:{fire_ms}"
    store = first.schedule_store
    [(due_id, due_ms)] = await store.due("default", fire_ms, 10)
    await first.schedule_runner._claim("default", due_id, due_ms, fire_ms)
    # the first node starts the execution, then dies before writing the outcome
    original = store.done

    async def dies(*args: Any, **kwargs: Any) -> bool:
        raise asyncio.CancelledError

    store.done = dies  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await first.schedule_runner._try("default", member)
    store.done = original  # type: ignore[method-assign]
    [started] = await _executions(first)
    await crash(first)
    clock.advance(LEASE_MS + 1)
    await second.schedule_runner.tick()
    assert await _executions(second) == [started]  # the same execution: the start was idempotent
    [outcome] = (await _view(second, schedule_id)).lastOutcomes
    assert (outcome.result, outcome.executionID) == ("started", started)
    assert outcome.reason is not None and "earlier try" in outcome.reason


# --- daylight saving time ---------------------------------------------------------------------------------------


async def test_a_time_the_clocks_skip_fires_after_the_jump(make_engine: EngineFactory) -> None:
    sunday = _last_sunday(3)
    clock = SetClock(_at(3, sunday, 12, days=-1))
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, cron="30 2 * * *", timezone="Europe/Berlin")
    # 02:30 does not exist in Berlin on the last Sunday of March (02:00 CET -> 03:00 CEST): it fires at 03:00 CEST
    assert (await _view(engine, schedule_id)).nextFireTimes[:3] == [
        _at(3, sunday, 1),  # 03:00 CEST
        _at(3, sunday, 0, 30, days=1),  # the Monday's 02:30 CEST
        _at(3, sunday, 0, 30, days=2),
    ]
    clock.at = parse_iso(_at(3, sunday, 1))
    await engine.schedule_runner.tick()
    [outcome] = (await _view(engine, schedule_id)).lastOutcomes
    assert (outcome.result, outcome.fireTime) == ("started", _at(3, sunday, 1))


async def test_a_time_the_clocks_repeat_fires_once(make_engine: EngineFactory) -> None:
    sunday = _last_sunday(10)
    clock = SetClock(_at(10, sunday, 12, days=-1))
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, cron="30 2 * * *", timezone="Europe/Berlin", overlap="allow")
    # 02:30 happens twice in Berlin on the last Sunday of October (03:00 CEST -> 02:00 CET): it fires at the first
    assert (await _view(engine, schedule_id)).nextFireTimes[:2] == [_at(10, sunday, 0, 30), _at(10, sunday, 1, 30,
                                                                                                  days=1)]  # fmt: skip
    for quarter in range(4 * 4):  # through the night, a look every 15 minutes
        clock.at = parse_iso(_at(10, sunday, 23, days=-1)) + quarter * 15 * MINUTE
        await engine.schedule_runner.tick()
    assert [o.fireTime for o in (await _view(engine, schedule_id)).lastOutcomes] == [_at(10, sunday, 0, 30)]
    assert len(await _executions(engine)) == 1


# --- overlap ---------------------------------------------------------------------------------------------------


async def _fire(engine: Node, clock: SetClock, ms: int = MINUTE) -> None:
    clock.advance(ms)
    await engine.schedule_runner.tick()


async def test_overlap_skip_and_allow(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    skip = await _schedule(engine, WAITS, every="1m", overlap="skip")
    allow = await _schedule(engine, WAITS, every="1m", overlap="allow")
    await _fire(engine, clock)
    await _fire(engine, clock)
    assert _results(await _view(engine, skip)) == ["started", "skipped-overlap"]
    assert "is running" in ((await _view(engine, skip)).lastOutcomes[0].reason or "")
    assert _results(await _view(engine, allow)) == ["started", "started"]


async def test_overlap_buffer_one_starts_one_when_the_previous_ends(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, WAITS, every="1m", overlap="buffer-one")
    await _fire(engine, clock)
    [first] = (await _view(engine, schedule_id)).lastOutcomes
    await _fire(engine, clock)  # buffered
    await _fire(engine, clock)  # one is buffered already: skipped
    assert _results(await _view(engine, schedule_id)) == ["started", "buffered", "skipped-overlap"]
    assert first.executionID is not None
    await engine.signal(CALLER, first.executionID, "go", {})
    await wait_status(engine, first.executionID, "completed")
    await _fire(engine, clock, BUFFER_RECHECK_MS)  # the buffered one starts now
    view = await _view(engine, schedule_id)
    assert _results(view) == ["started", "buffered", "skipped-overlap", "started"]
    assert view.lastOutcomes[0].fireTime == f"{YEAR}-01-01T00:02:00.000Z"


async def test_overlap_cancel_previous(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, WAITS, every="1m", overlap="cancel-previous")
    await _fire(engine, clock)
    await _fire(engine, clock)
    second, first = (await _view(engine, schedule_id)).lastOutcomes
    assert (first.result, second.result) == ("started", "started")
    assert first.executionID is not None and second.executionID is not None
    assert await wait_status(engine, first.executionID, "cancelled") == "cancelled"
    assert (await engine.status(CALLER, second.executionID)).status == "running"


# --- catch-up --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catchup", "started", "missed"),
    # none: the latest time (30 s ago) is within the misfire grace, so it fires; the ten before are skipped
    [("none", 1, 1), ("latest", 1, 1), ("all", 11, 0)],
)
async def test_catch_up_after_downtime(make_engine: EngineFactory, catchup: str, started: int, missed: int) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, every="1m", catchup=catchup, overlap="allow")
    clock.advance(11 * MINUTE + 30_000)  # nobody fired it for 11.5 minutes: 11 times went by
    await engine.schedule_runner.tick()
    results = _results(await _view(engine, schedule_id))  # the last 10
    assert results.count("skipped-missed") == missed, results
    assert results[-1] == "started"
    assert len(await _executions(engine)) == started


async def test_catch_up_none_fires_nothing_once_past_the_grace(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, every="1h")
    clock.advance(60 * MINUTE + MISFIRE_GRACE_MS + 1)
    await engine.schedule_runner.tick()
    [outcome] = (await _view(engine, schedule_id)).lastOutcomes
    assert (outcome.result, outcome.fireTime) == ("skipped-missed", f"{YEAR}-01-01T01:00:00.000Z")
    assert await _executions(engine) == []


async def test_catch_up_all_reaches_back_only_its_window(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, every="1m", catchup="all", catchupWindow="5m", overlap="allow")
    clock.advance(30 * MINUTE)
    await engine.schedule_runner.tick()
    results = _results(await _view(engine, schedule_id))
    assert results[0] == "skipped-missed" and results.count("started") == 6  # 00:25 .. 00:30


# --- steering --------------------------------------------------------------------------------------------------


async def test_pause_resume_trigger_update_delete(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, every="5m")
    paused = await engine.steer_schedule(CALLER, schedule_id, "pause", ScheduleSteer(reason="maintenance"))
    assert (paused.state, paused.nextFireTimes) == ("paused", [])
    await _fire(engine, clock, 10 * MINUTE)
    assert await _executions(engine) == []
    resumed = await engine.steer_schedule(CALLER, schedule_id, "resume", ScheduleSteer())
    assert resumed.nextFireTimes[0] == f"{YEAR}-01-01T00:15:00.000Z"  # the times it was paused over are not made up
    triggered = await engine.trigger_schedule(CALLER, schedule_id, ScheduleSteer())
    await engine.schedule_runner.tick()
    [outcome] = (await _view(engine, schedule_id)).lastOutcomes
    assert (outcome.result, outcome.manual, outcome.fireTime) == ("started", True, triggered.fireTime)
    updated = await engine.update_schedule(CALLER, schedule_id, SchedulePatch(cron="0 * * * *", timezone="UTC"))
    assert (updated.cron, updated.every, updated.nextFireTimes[0]) == ("0 * * * *", None, f"{YEAR}-01-01T01:00:00.000Z")
    with pytest.raises(ValidationFailed):
        await engine.update_schedule(CALLER, schedule_id, SchedulePatch(timezone="Nowhere/Else"))
    deleted = await engine.delete_schedule(CALLER, schedule_id)
    assert deleted.deleted
    with pytest.raises(NotFound):
        await engine.schedule(CALLER, schedule_id)
    await _fire(engine, clock, 60 * MINUTE)
    assert len(await _executions(engine)) == 1


async def test_start_and_end_bound_the_fire_times(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    monday = next(day for day in range(2, 9) if datetime(YEAR, 1, day).weekday() == 0)
    schedule_id = await _schedule(
        engine, cron="0 9 * * 1-5", timezone="America/New_York", startAt=_at(1, monday, 0),
        endAt=_at(1, monday, 23, days=2),
    )  # fmt: skip
    view = await _view(engine, schedule_id)
    assert view.nextFireTimes == [_at(1, monday, 14, days=d) for d in range(3)]  # 09:00 EST, Monday to Wednesday
    clock.at = parse_iso(_at(1, monday, 0, days=3))
    await engine.schedule_runner.tick()
    assert (await _view(engine, schedule_id)).state == "ended"


async def test_each_change_is_an_audit_line(make_engine: EngineFactory, caplog: pytest.LogCaptureFixture) -> None:
    engine = await _node(make_engine, SetClock(JAN))
    caplog.set_level("INFO", logger="procengine.node.schedules")
    schedule_id = await _schedule(engine, every="5m", reason="nightly")
    steer = ScheduleSteer(reason="why not")
    await engine.steer_schedule(CALLER, schedule_id, "pause", steer)
    await engine.steer_schedule(CALLER, schedule_id, "resume", steer)
    await engine.trigger_schedule(CALLER, schedule_id, steer)
    await engine.update_schedule(CALLER, schedule_id, SchedulePatch(every="1h", reason="slower"))
    await engine.delete_schedule(CALLER, schedule_id, "gone")
    audits = [(r.audit, r.scheduleID, r.tenant, r.by, r.requestID, r.reason) for r in caplog.records
              if hasattr(r, "audit")]  # fmt: skip
    assert audits == [
        (f"schedule-{event}", schedule_id, "default", "default", "req-test", reason)
        for event, reason in [("created", "nightly"), ("paused", "why not"), ("resumed", "why not"),
                              ("triggered", "why not"), ("updated", "slower"), ("deleted", "gone")]
    ]  # fmt: skip


async def test_a_firing_refused_for_a_while_is_tried_again_after_its_lease(make_engine: EngineFactory) -> None:
    clock = SetClock(JAN)
    engine = await _node(make_engine, clock)
    schedule_id = await _schedule(engine, every="1h")
    original = engine.start_execution
    refusals = [TooManyRequests("the tenant's starts are over its rate", retry_after_s=1)]

    async def refuse_once(*args: Any, **kwargs: Any) -> Any:
        if refusals:
            raise refusals.pop()
        return await original(*args, **kwargs)

    engine.start_execution = refuse_once  # type: ignore[method-assign]
    await _fire(engine, clock, 60 * MINUTE)
    assert (await _view(engine, schedule_id)).lastOutcomes == []  # not failed: it waits for its lease
    await _fire(engine, clock, LEASE_MS + 1)
    [outcome] = (await _view(engine, schedule_id)).lastOutcomes
    assert (outcome.result, outcome.fireTime) == ("started", f"{YEAR}-01-01T01:00:00.000Z")


async def test_two_nodes_firing_on_their_own_start_each_time_once(make_engine: EngineFactory) -> None:
    # given two nodes whose own schedule loops run (real time), and a schedule firing every second
    first, second = await make_engine(), await make_engine()
    await first.register_process(CALLER, QUICK)
    created = await second.create_schedule(CALLER, ScheduleRequest(processKey="quick", every="1s", overlap="allow"))

    # when both have fired it three times or more
    async def started() -> list[int]:
        outcomes = (await first.schedule(CALLER, created.scheduleID)).lastOutcomes
        return [o.executionID for o in outcomes if o.result == "started" and o.executionID is not None]

    await poll(started, lambda ids: len(ids) >= 3, within=15)
    await first.steer_schedule(CALLER, created.scheduleID, "pause", ScheduleSteer())

    # then each fire time started one execution, and no other was started
    outcomes = (await first.schedule(CALLER, created.scheduleID)).lastOutcomes
    fired = [o.fireTime for o in outcomes]
    assert len(fired) == len(set(fired))

    async def both() -> tuple[list[int], list[int]]:  # a firing under way when it was paused may still finish
        return sorted(await started()), sorted(await _executions(first))

    await poll(both, lambda pair: pair[0] == pair[1], within=10)
