"""The sequential chain over the embedded Redis's unix socket vs over TCP loopback, on the same redis-server.

The figure (issue 21, goal 5): one execution of a chain of 200 task elements (the built-in `echo` handler), run by
an engine in this process, built as `procengine serve` builds it (`connect` + `Node`): each element is a task start
and a task end, each a checkpoint that must be acknowledged before the next element starts, so the chain is a
sequence of round trips. Timed from the start request to the final write (the engine's own
`procengine_executions_finished_total`, whose increment wakes the bench: no polling, no extra Redis command).

procengine: the engine connected with `unix:///…/redis.sock` (what `procengine serve` uses for its embedded
Redis). Baseline: the same engine connected with `redis://127.0.0.1:<port>` to the same server, in alternating
rounds (the side that goes first swaps each round). Steps/s is element steps (200) over the time.

Beside it, in the same rounds, three lines that say what bounds the figure:
- the 200-step set-variable chain with `--checkpoint-coalesce 1` (each element its own checkpoint: one round trip
  per step and no task), over each transport: the same question with less engine CPU per round trip;
- the one-round-trip floor over each transport: commit.lua calls one at a time on one connection with the
  chain's checkpoint arguments, pre-encoded, replies parsed by hiredis (no engine): the transport's gain on the
  write the chain makes, which is the most any chain can gain;
- sequential PINGs from redis-py's asyncio client over each transport.
A step's time is the engine's CPU plus its round trips; the socket shortens only the round trips (by 10-30 µs
each on 2 cores), so a chain's ratio is the floor's ratio diluted by the engine's CPU per round trip.
docs/performance.md ("The embedded Redis over a unix socket") has the profile and which figure says what.

The completion wait used to poll the counter with `asyncio.sleep(0.0005)`, which uvloop rounds to a 0 ms timer:
the bench spun a core for the whole chain, beside the engine and redis-server on a 2-core machine.

`chain_engine` and `finished_counter` are shared with the peers comparison (bench/peers/).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.baselines import floor_commands, floor_per_s
from bench.common import Context, Figure, chain_definition, ratio
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


class Finished:
    """The engine's count of completed executions of one process, read from the counter itself, and a wait for
    it to reach a number, woken by the counter's increment (prometheus_client has no public read of one child,
    nor a hook: its `inc` is wrapped on this child only)."""

    def __init__(self, metrics: Metrics, process_key: str) -> None:
        self._child = metrics.finished.labels(process_key=process_key, status="completed")
        self._changed = asyncio.Event()
        counted = self._child.inc

        def inc(amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
            counted(amount, exemplar)
            self._changed.set()

        self._child.inc = inc  # type: ignore[method-assign]

    def __call__(self) -> float:
        return float(self._child._value.get())

    async def reach(self, count: int, timeout_s: float) -> None:
        """Back once `count` executions have completed; TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while self() < count:
                self._changed.clear()
                await self._changed.wait()


def finished_counter(metrics: Metrics, process_key: str) -> Finished:
    return Finished(metrics, process_key)


@contextlib.asynccontextmanager
async def chain_engine(
    redis_url: str, prefix: str, name: str, steps: int, *, tasks: bool = True, coalesce: int | None = None
) -> AsyncIterator[tuple[Node, StartRequest, Finished]]:
    """An in-process engine built as `serve` builds it (`connect` + `Node`), with a chain of `steps` registered and
    compiled outside the clock (tasks, or set-variable elements with `tasks=False`; `coalesce`: the engine's
    `--checkpoint-coalesce`): the engine, the start request and the count of ended executions."""
    settings = Settings(redis_url=redis_url, prefix=prefix, log_level="WARNING", pause_grace_ms=100)
    if coalesce is not None:
        settings = settings.model_copy(update={"checkpoint_coalesce": coalesce})
    metrics = Metrics()
    redis = connect(redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    finished = finished_counter(metrics, name)
    definition = task_chain_definition(name, steps) if tasks else chain_definition(name, steps)
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics) as engine:
            summary, _ = await engine.register_process(CALLER, definition)
            await engine.catalog.compiled("default", summary.processID)  # compile once, outside the clock
            variables: dict[str, Any] = {} if tasks else {"counter": 0}
            yield engine, StartRequest(processID=summary.processID, variables=variables), finished
    finally:
        await redis.aclose()


async def run_chain(
    redis_url: str,
    prefix: str,
    steps: int = STEPS,
    executions: int = 1,
    *,
    tasks: bool = True,
    coalesce: int | None = None,
) -> float:
    """Seconds for `executions` chains of `steps` elements, one after the other, on a fresh in-process engine."""
    async with chain_engine(redis_url, prefix, "chain", steps, tasks=tasks, coalesce=coalesce) as (
        engine,
        request,
        finished,
    ):
        started = time.perf_counter()
        for done in range(1, executions + 1):
            await engine.start_execution(CALLER, request)
            try:
                await finished.reach(done, timeout_s=60)
            except TimeoutError:
                raise TimeoutError(f"socket: chain {done} not finished within 60 s") from None
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


SIDES = ("unix", "tcp")
MEASURES = ("tasks", "set-variable", "floor", "pings")


async def run(ctx: Context) -> list[Figure]:
    unix_url = await unix_url_of(ctx.redis_url)
    if unix_url is None:
        raise RuntimeError(f"the run's redis-server ({ctx.redis_url}) has no unix socket")
    rounds = ctx.n(7, 3)
    urls = {"unix": unix_url, "tcp": ctx.redis_url}
    rates: dict[str, dict[str, list[float]]] = {m: {side: [] for side in SIDES} for m in MEASURES}
    await run_chain(unix_url, "socket-warm", steps=20)  # imports, scripts loaded, caches warm
    await run_chain(unix_url, "socket-warm-sv", steps=20, tasks=False, coalesce=1)
    for i in range(rounds):
        order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))
        for side in order:
            await ctx.flush()
            rates["tasks"][side].append(STEPS / await run_chain(urls[side], f"socket-{side}-{i}"))
        for side in order:
            await ctx.flush()
            seconds = await run_chain(urls[side], f"socket-sv-{side}-{i}", tasks=False, coalesce=1)
            rates["set-variable"][side].append(STEPS / seconds)
        await ctx.flush()
        commands = await floor_commands(ctx)
        for side in order:
            rates["floor"][side].append(await floor_per_s(urls[side], commands, ctx.seconds(0.5, 0.2)))
            rates["pings"][side].append(await pings_per_s(urls[side], ctx.n(3000, 1000)))
    return [
        _figure(
            f"sequential chain over the unix socket ({STEPS} tasks, one execution)",
            rates["tasks"],
            "steps/s",
            "the same over TCP loopback, same redis-server",
            f">= {TARGET}x TCP",
            gated=True,
            details={"unix_url": unix_url},
        ),
        _figure(
            f"the same, {STEPS} set-variable elements, --checkpoint-coalesce 1 (a round trip per step)",
            rates["set-variable"],
            "steps/s",
            "the same over TCP loopback",
            "(context: one round trip per step, no task)",
        ),
        _figure(
            "one-round-trip floor over the unix socket (commit.lua one at a time, raw connection)",
            rates["floor"],
            "calls/s",
            "the same over TCP loopback",
            "(context: the transport's gain on the chain's write, its ceiling)",
        ),
        _figure(
            "sequential PINGs over the unix socket (redis-py asyncio)",
            rates["pings"],
            "round trips/s",
            "the same over TCP loopback",
            "(context: the transport's own gain)",
        ),
    ]


def _figure(
    name: str,
    rounds: dict[str, list[float]],
    unit: str,
    baseline_label: str,
    target: str,
    *,
    gated: bool = False,
    details: dict[str, Any] | None = None,
) -> Figure:
    unix, tcp = statistics.median(rounds["unix"]), statistics.median(rounds["tcp"])
    pairs = [u / t for u, t in zip(rounds["unix"], rounds["tcp"], strict=True)]
    share = ratio(unix, tcp)
    return Figure(
        name=name,
        value=unix,
        unit=unit,
        baseline=tcp,
        baseline_label=baseline_label,
        ratio=share,
        target=target,
        passed=(share is not None and share >= TARGET) if gated else None,
        notes=(
            f"median of {len(pairs)} alternating rounds; unix {', '.join(f'{r:,.0f}' for r in rounds['unix'])}; "
            f"tcp {', '.join(f'{r:,.0f}' for r in rounds['tcp'])}; round ratios {', '.join(f'{p:.2f}' for p in pairs)}"
        ),
        details={"rounds": rounds, "round_ratios": pairs, **(details or {})},
    )
