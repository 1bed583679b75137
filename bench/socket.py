"""The sequential chain over the embedded Redis's unix socket vs over TCP loopback, on the same redis-server.

One execution of a chain of 200 task elements (the built-in `echo` handler), run by an engine in this process,
built as `procengine serve` builds it (`connect` + `Node`): each element is a task start and a task end, each a
checkpoint that must be acknowledged before the next element starts, so the chain is a sequence of round trips
and shows what one round trip costs. Timed from the start request to the final write (the engine's own
`procengine_executions_finished_total`, read in process: no extra Redis command).

procengine: the engine connected with `unix:///…/redis.sock` (what `procengine serve` uses for its embedded
Redis). Baseline: the same engine connected with `redis://127.0.0.1:<port>` to the same server, in alternating
rounds (the side that goes first swaps each round). Steps/s is element steps (200) over the time.

Context: sequential PINGs from redis-py's asyncio client over each transport, in the same rounds: the transport's
own gain (Redis's docs give up to +50% for a unix socket over TCP loopback), which bounds the chain's.

`run_chain` is shared with the peers comparison (bench/peers/).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from bench.common import Context, Figure, ratio
from procengine.api.service import Caller
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers

STEPS = 200
TARGET = 1.2
CALLER = Caller(tenant="default", by="bench", request_id="bench")


def task_chain_definition(key: str, steps: int) -> dict[str, Any]:
    """`steps` task elements in a row (the built-in `echo`), each taking the previous one's output."""
    elements: list[dict[str, Any]] = []
    for i in range(1, steps + 1):
        element: dict[str, Any] = {
            "key": f"t{i:03d}",
            "type": "task",
            "handler": "echo",
            "input": {"step": str(i)},
            "output": "last",
        }
        if i < steps:
            element["next"] = f"t{i + 1:03d}"
        elements.append(element)
    return {"key": key, "name": f"{steps} tasks in a row", "threads": [{"key": "main", "elements": elements}]}


async def unix_url_of(redis_url: str) -> str | None:
    """`unix:///…?db=0` of the redis-server at `redis_url` when it listens on a unix socket (CONFIG GET), else None."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        path = (await client.config_get("unixsocket")).get("unixsocket")
    finally:
        await client.aclose()
    return f"unix://{path}?db=0" if path else None


@contextlib.asynccontextmanager
async def chain_engine(
    redis_url: str, prefix: str, name: str, steps: int
) -> AsyncIterator[tuple[Node, StartRequest, Callable[[], float]]]:
    """An in-process engine built as `serve` builds it (`connect` + `Node`), with a chain of `steps` tasks
    registered and compiled outside the clock: the engine, the start request and the count of ended executions."""
    settings = Settings(redis_url=redis_url, prefix=prefix, log_level="WARNING", pause_grace_ms=100)
    metrics = Metrics()
    redis = connect(redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    finished = finished_counter(metrics, name)
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics) as engine:
            summary, _ = await engine.register_process(CALLER, task_chain_definition(name, steps))
            await engine.catalog.compiled("default", summary.processID)  # compile once, outside the clock
            yield engine, StartRequest(processID=summary.processID, variables={}), finished
    finally:
        await redis.aclose()


async def run_chain(redis_url: str, prefix: str, steps: int = STEPS, executions: int = 1) -> float:
    """Seconds for `executions` chains of `steps` tasks, one after the other, on a fresh in-process engine."""
    async with chain_engine(redis_url, prefix, "chain", steps) as (engine, request, finished):
        started = time.perf_counter()
        for done in range(1, executions + 1):
            await engine.start_execution(CALLER, request)
            deadline = time.perf_counter() + 60
            while finished() < done:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"socket: chain {done} not finished within 60 s")
                await asyncio.sleep(0.0005)
        return time.perf_counter() - started


async def pings_per_s(redis_url: str, count: int) -> float:
    """Sequential PINGs per second over one connection (one round trip each)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        await client.ping()
        started = time.perf_counter()
        for _ in range(count):
            await client.ping()
        return count / (time.perf_counter() - started)
    finally:
        await client.aclose()


def finished_counter(metrics: Metrics, process_key: str) -> Callable[[], float]:
    """The engine's count of completed executions of `process_key`, read from the counter itself: cheap enough to
    poll every half millisecond (`registry.get_sample_value` collects every metric, which took 40% of a chain's
    time when polled this often)."""
    child = metrics.finished.labels(process_key=process_key, status="completed")
    return lambda: child._value.get()  # prometheus_client has no public read of one child


async def run(ctx: Context) -> list[Figure]:
    unix_url = await unix_url_of(ctx.redis_url)
    if unix_url is None:
        raise RuntimeError(f"the run's redis-server ({ctx.redis_url}) has no unix socket")
    rounds = ctx.n(7, 3)
    sides = {"unix": unix_url, "tcp": ctx.redis_url}
    rates: dict[str, list[float]] = {"unix": [], "tcp": []}
    pings: dict[str, list[float]] = {"unix": [], "tcp": []}
    await run_chain(unix_url, "socket-warm", steps=20)  # imports, scripts loaded, caches warm
    for i in range(rounds):
        order = ["unix", "tcp"] if i % 2 == 0 else ["tcp", "unix"]
        for side in order:
            await ctx.flush()
            seconds = await run_chain(sides[side], f"socket-{side}-{i}")
            rates[side].append(STEPS / seconds)
            pings[side].append(await pings_per_s(sides[side], ctx.n(3000, 1000)))
    unix, tcp = statistics.median(rates["unix"]), statistics.median(rates["tcp"])
    pairs = [u / t for u, t in zip(rates["unix"], rates["tcp"], strict=True)]
    share = ratio(unix, tcp)
    ping_unix, ping_tcp = statistics.median(pings["unix"]), statistics.median(pings["tcp"])
    return [
        Figure(
            name=f"sequential chain over the unix socket ({STEPS} tasks, one execution)",
            value=unix,
            unit="steps/s",
            baseline=tcp,
            baseline_label="the same over TCP loopback, same redis-server",
            ratio=share,
            target=f">= {TARGET}x TCP",
            passed=share is not None and share >= TARGET,
            notes=(
                f"median of {rounds} alternating rounds; unix {', '.join(f'{r:,.0f}' for r in rates['unix'])}; "
                f"tcp {', '.join(f'{r:,.0f}' for r in rates['tcp'])}; round ratios "
                f"{', '.join(f'{p:.2f}' for p in pairs)}"
            ),
            details={"rounds": rates, "round_ratios": pairs, "unix_url": unix_url},
        ),
        Figure(
            name="sequential PINGs over the unix socket (redis-py asyncio)",
            value=ping_unix,
            unit="round trips/s",
            baseline=ping_tcp,
            baseline_label="the same over TCP loopback",
            ratio=ratio(ping_unix, ping_tcp),
            target="(context: the transport's own gain, the chain's ceiling)",
            passed=None,
            notes=(
                f"median of {rounds} rounds; unix {', '.join(f'{r:,.0f}' for r in pings['unix'])}; "
                f"tcp {', '.join(f'{r:,.0f}' for r in pings['tcp'])}"
            ),
            details={"rounds": pings},
        ),
    ]
