"""procengine's side of the peers comparison: the same two workloads, on an engine in this process built as
`procengine serve` builds it (`connect` + `Node`), over the embedded redis-server's unix socket as `serve` uses it.

A durable step is a task element (the built-in `echo`): its start and its end are each a checkpoint that Redis has
acknowledged before the execution goes on.
"""

from __future__ import annotations

import asyncio
import time

from bench.socket import CALLER, finished_counter, run_chain, task_chain_definition
from procengine.api.views import StartRequest
from procengine.node.node import Node
from procengine.runtime.metrics import Metrics
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.tasks import builtin_handlers

__all__ = ["run_chain", "run_fanout"]


async def run_fanout(redis_url: str, prefix: str, executions: int, steps: int, timeout_s: float = 120) -> float:
    """Seconds for `executions` executions of `steps` tasks each, all started at once, until the last has ended."""
    settings = Settings(redis_url=redis_url, prefix=prefix, log_level="WARNING", pause_grace_ms=100)
    metrics = Metrics()
    redis = connect(redis_url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    finished = finished_counter(metrics, "fanout")
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics) as engine:
            summary, _ = await engine.register_process(CALLER, task_chain_definition("fanout", steps))
            await engine.catalog.compiled("default", summary.processID)
            request = StartRequest(processID=summary.processID, variables={})
            started = time.perf_counter()
            await asyncio.gather(*(engine.start_execution(CALLER, request) for _ in range(executions)))
            deadline = started + timeout_s
            while finished() < executions:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"peers: {finished():.0f} of {executions} executions ended in {timeout_s:.0f}s")
                await asyncio.sleep(0.001)
            return time.perf_counter() - started
    finally:
        await redis.aclose()
