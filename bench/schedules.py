"""Schedules (issue 24, point 3): what an idle node's schedule loop costs in Redis commands/s with no schedules and
with 10,000 (it should not grow with their number), and the firing lag (the execution's `startedAt` less its fire
time) of schedules that fire every second.

One node in this process (its schedule loop on), on a redis-server of its own in a temporary directory:
1. commands/s over a window with no schedule (INFO commandstats, everything the node sends: heartbeat, reconciler,
   the schedule loop...), then again once 10,000 schedules that fire once a year exist;
2. 50 schedules `every: 1s` (overlap allow) for a few seconds; each firing's lag from the execution it started.

    .venv/bin/python -m bench --only schedules          # in the bench's table: 10,000 idle schedules, 5 s windows
    .venv/bin/python -m bench.schedules                 # the same, every number printed
    SCHEDULES=1000 WINDOW_S=3 .venv/bin/python -m bench.schedules

In the table: the idle node's commands/s with 10,000 schedules beside the same node's with none (goal: at most
1.5x, i.e. not growing with their number), and the firing lag's p99 (for context).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.common import Context, Figure, ratio
from procengine.api.schedule_views import ScheduleRequest, ScheduleSteer
from procengine.api.service import Caller
from procengine.node.node import Node
from procengine.runtime.clock import parse_iso
from procengine.settings import Settings
from procengine.store.embedded import RedisServer
from procengine.tasks import builtin_handlers

CALLER = Caller("default", "bench", "bench")
QUICK = {"key": "bench-quick", "threads": [{"key": "main", "elements": [{"key": "done", "type": "end"}]}]}
FIRING = int(os.environ.get("FIRING", "50"))


async def _calls(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def _rate(redis: Redis, seconds: float) -> tuple[float, dict[str, float]]:
    before = await _calls(redis)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    after = await _calls(redis)
    wall = time.perf_counter() - started
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    delta["info"] = delta.get("info", 0) - 1
    return sum(delta.values()) / wall, {n: round(c / wall, 1) for n, c in sorted(delta.items()) if c > 0}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(count: int, window_s: float, workdir: Path) -> dict[str, Any]:
    server = RedisServer(workdir / "redis")
    server.start()
    redis = Redis.from_url(server.url)
    settings = Settings(redis_url=server.url, prefix="bench", data_dir=workdir / "data", port=0)
    try:
        async with Node(redis, settings, builtin_handlers()) as node:
            await node.register_process(CALLER, QUICK)
            await asyncio.sleep(1)  # the start's own commands out of the window
            empty, empty_by = await _rate(redis, window_s)
            made = time.perf_counter()
            for _ in range(count):
                await node.create_schedule(CALLER, ScheduleRequest(processKey="bench-quick", cron="0 0 1 1 *"))
            made_s = time.perf_counter() - made
            await asyncio.sleep(1)
            full, full_by = await _rate(redis, window_s)

            firing = [
                (await node.create_schedule(CALLER, ScheduleRequest(processKey="bench-quick", every="1s",
                                                                    overlap="allow"))).scheduleID
                for _ in range(FIRING)
            ]  # fmt: skip
            await asyncio.sleep(window_s)
            for schedule_id in firing:
                await node.steer_schedule(CALLER, schedule_id, "pause", ScheduleSteer())
            lags: list[float] = []
            takes: list[float] = []
            for schedule_id in firing:
                for outcome in (await node.schedule(CALLER, schedule_id)).lastOutcomes:
                    if outcome.result == "started" and outcome.executionID is not None:
                        status = await node.status(CALLER, outcome.executionID)
                        lags.append(parse_iso(status.timing.startedAt) - parse_iso(outcome.fireTime))
                        takes.append(parse_iso(outcome.at) - parse_iso(outcome.fireTime))
    finally:
        await redis.aclose()
        server.stop()
    loop_commands = ("zrangebyscore", "zrange")
    return {
        "schedules": count,
        "created_per_s": round(count / made_s),
        "idle_commands_per_s_without": round(empty, 1),
        "idle_commands_per_s_with": round(full, 1),
        "schedule_loop_commands_per_s_without": sum(empty_by.get(n, 0) for n in loop_commands),
        "schedule_loop_commands_per_s_with": sum(full_by.get(n, 0) for n in loop_commands),
        "firings": len(lags),
        "lag_p50_ms": _percentile(lags, 0.5) if lags else None,
        "lag_p99_ms": _percentile(lags, 0.99) if lags else None,
        "taken_p50_ms": _percentile(takes, 0.5) if takes else None,
        "taken_p99_ms": _percentile(takes, 0.99) if takes else None,
    }


IDLE_TARGET = 1.5


async def run(ctx: Context) -> list[Figure]:
    """The bench runner's entry (`python -m bench --only schedules`): its own redis-server, as `main`'s."""
    count, window_s = ctx.n(10_000, 1_000), ctx.seconds(5.0, 2.0)
    found = await measure(count, window_s, Path(tempfile.mkdtemp(dir=ctx.workdir, prefix="schedules-")))
    idle, without = found["idle_commands_per_s_with"], found["idle_commands_per_s_without"]
    shown = ratio(idle, without)
    return [
        Figure(
            name="idle node's Redis commands/s with schedules",
            value=idle,
            unit="commands/s",
            baseline=without,
            baseline_label="the same node with no schedule",
            ratio=shown,
            target=f"<= {IDLE_TARGET:g}x (does not grow with the schedules)",
            passed=shown is not None and shown <= IDLE_TARGET,
            notes=f"{count:,} schedules; the schedule loop's own share {found['schedule_loop_commands_per_s_with']}"
            f" vs {found['schedule_loop_commands_per_s_without']} commands/s; {window_s:g}s windows",
            details=found,
        ),
        Figure(
            name="schedule firing lag p99",
            value=found["lag_p99_ms"] or float("nan"),
            unit="ms",
            baseline=None,
            baseline_label="",
            ratio=None,
            target="(context)",
            passed=None,
            notes=f"{found['firings']} firings of {FIRING} schedules every 1s; p50 {found['lag_p50_ms']} ms "
            "(the execution's startedAt less its fire time)",
        ),
    ]


def main() -> None:
    count = int(os.environ.get("SCHEDULES", "10000"))
    window_s = float(os.environ.get("WINDOW_S", "5"))
    with tempfile.TemporaryDirectory(prefix="procengine-bench-schedules-") as tmp:
        figures = asyncio.run(measure(count, window_s, Path(tmp)))
    for name, value in figures.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
