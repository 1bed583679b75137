"""The event-loop lag sampler (runtime/metrics.py): how late the loop ran a timer that was due, as a histogram on
/metrics, so that what holds a node's loop shows in production (issue 21, goal 2)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from procengine.runtime.metrics import Metrics, sample_loop_lag
from tests.support.polling import until


class Done(Exception):
    """The fake sleep has no more steps."""


async def test_each_sample_is_how_late_the_sleep_woke() -> None:
    # given a clock that a fake sleep moves: 20 ms asked, 20, 45 and 20 ms slept
    now = [100.0]
    slept = iter([0.020, 0.045, 0.020])
    seen: list[float] = []

    async def sleep(_: float) -> None:
        step = next(slept, None)
        if step is None:
            raise Done
        now[0] += step

    # when the sampler runs three samples
    with contextlib.suppress(Done):
        await sample_loop_lag(seen.append, interval_s=0.020, now=lambda: now[0], sleep=sleep)

    # then it observed the overshoot of each (never a negative lag)
    assert [round(lag, 6) for lag in seen] == [0.0, 0.025, 0.0]


async def test_a_blocked_loop_shows_in_the_histogram() -> None:
    metrics = Metrics()
    sampler = asyncio.create_task(sample_loop_lag(metrics.loop_lag.observe, interval_s=0.005))
    try:
        await until(lambda: _count(metrics, "+Inf") > 0, within=5)
        # when a piece of work holds the loop for 60 ms
        _busy(0.06)
        # then a sample of at least 50 ms is on /metrics
        await until(lambda: _count(metrics, "+Inf") - _count(metrics, "0.05") > 0, within=5)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    text, _ = metrics.render()
    assert b"procengine_event_loop_lag_seconds_bucket" in text


def _busy(seconds: float) -> None:
    """CPU work that does not yield to the loop for `seconds` (what the sampler is there to see)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _count(metrics: Metrics, le: str) -> float:
    """The cumulative count of the lag histogram's bucket `le`."""
    for line in metrics.render()[0].decode().splitlines():
        if line.startswith(f'procengine_event_loop_lag_seconds_bucket{{le="{le}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no bucket {le}")
