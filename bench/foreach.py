"""for-each: one execution fanning out over 1,000 items with maxConcurrency 50, vs the same elements in a row.

procengine: one engine in this process (as in steps.py). Each figure times one execution from its start to its
final write, and counts the elements it completed:

- fan-out: a for-each over 1,000 items, maxConcurrency 50, whose body is one element per item;
- sequential: the same 1,000 elements one after the other in one execution (a chain; for the task body, a
  for-each with maxConcurrency 1, which runs its items in order).

Two bodies: a set-variable (the engine's own cost per element: interpreter and checkpoint) and a task whose
handler waits 10 ms (an element that waits on I/O, where the fan-out's concurrency pays). The ratio is fan-out /
sequential elements per second.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import Context, Figure, chain_definition, ratio
from procengine.api.service import Caller
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers

ITEMS = 1000
CONCURRENCY = 50
TASK_MS = 10
CALLER = Caller(tenant="default", by="bench", request_id="bench")


def fan_out(key: str, body: dict[str, Any], concurrency: int) -> dict[str, Any]:
    each = {
        "key": "each",
        "type": "for-each",
        "items": "items",
        "as": "item",
        "maxConcurrency": concurrency,
        "result": "out",
        "output": "results",
        "body": {"elements": [body]},
    }
    return {"key": key, "threads": [{"key": "main", "elements": [each]}]}


SET_BODY = {"key": "work", "type": "set-variable", "set": {"out": "item * 2"}}
TASK_BODY = {"key": "work", "type": "task", "handler": "wait", "input": {"item": "item"}, "output": "out"}


async def _wait(task_input: dict[str, Any]) -> int:
    await asyncio.sleep(TASK_MS / 1000)
    return int(task_input["item"]) * 2


async def one_execution(ctx: Context, definition: dict[str, Any], variables: dict[str, Any]) -> float:
    """Seconds from the start of one execution of `definition` to its completion."""
    settings = Settings(redis_url=ctx.redis_url, prefix="foreach", log_level="WARNING")
    metrics = Metrics()
    redis = connect(ctx.redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    handlers = builtin_handlers()
    handlers.register("wait", _wait)
    try:
        async with Node(redis, settings, handlers, metrics=metrics) as engine:
            summary, _ = await engine.register_process(CALLER, definition)
            await engine.catalog.compiled("default", summary.processID)  # compile once, outside the clock
            started = time.perf_counter()
            result, _ = await engine.start_execution(
                CALLER, StartRequest(processID=summary.processID, variables=variables)
            )
            actor = engine.registry.get(result.executionID)
            assert actor is not None
            await asyncio.wait_for(actor.stopped.wait(), timeout=max(ctx.left(), 30))
            elapsed = time.perf_counter() - started
            status = await engine.status(CALLER, result.executionID)
            if status.status != "completed":
                raise RuntimeError(f"foreach: {definition['key']} ended {status.status}: {status.error}")
            return elapsed
    finally:
        await redis.aclose()


async def run(ctx: Context) -> list[Figure]:
    items = ctx.n(ITEMS, 200)
    variables = {"items": list(range(items)), "counter": 0}
    figures: list[Figure] = []
    for body, label in ((SET_BODY, "set-variable"), (TASK_BODY, f"{TASK_MS} ms task")):
        await ctx.flush()
        parallel_s = await one_execution(ctx, fan_out("fan", body, CONCURRENCY), variables)
        await ctx.flush()
        if body is SET_BODY:
            sequential_s = await one_execution(ctx, chain_definition("chain", items), variables)
            how = f"a chain of {items} set-variable elements"
        else:
            sequential_s = await one_execution(ctx, fan_out("serial", body, 1), variables)
            how = "the same for-each with maxConcurrency 1"
        per_s, sequential_per_s = items / parallel_s, items / sequential_s
        figures.append(
            Figure(
                name=f"for-each over {items:,} items x {label}, maxConcurrency {CONCURRENCY}",
                value=per_s,
                unit="elements/s",
                baseline=sequential_per_s,
                baseline_label=f"sequential: {how}",
                ratio=ratio(per_s, sequential_per_s),
                target="(context)",
                passed=None,
                notes=f"one execution: {parallel_s:.2f}s fanned out vs {sequential_s:.2f}s in a row",
                details={"fan_out_s": parallel_s, "sequential_s": sequential_s, "items": items},
            )
        )
    return figures
