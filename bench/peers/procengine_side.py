"""procengine's side of the peers comparison: the same two workloads, on an engine in this process built as
`procengine serve` builds it (`connect` + `Node`), over the embedded redis-server's unix socket as `serve` uses it.

A durable step is a task element (the built-in `echo`): its start and its end are each a checkpoint that Redis has
acknowledged before the execution goes on.
"""

from __future__ import annotations

import asyncio
import time

from bench.socket import CALLER, chain_engine, run_chain

__all__ = ["run_chain", "run_fanout"]


async def run_fanout(redis_url: str, prefix: str, executions: int, steps: int, timeout_s: float = 120) -> float:
    """Seconds for `executions` executions of `steps` tasks each, all started at once, until the last has ended."""
    async with chain_engine(redis_url, prefix, "fanout", steps) as (engine, request, finished):
        started = time.perf_counter()
        await asyncio.gather(*(engine.start_execution(CALLER, request) for _ in range(executions)))
        deadline = started + timeout_s
        while finished() < executions:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"peers: {finished():.0f} of {executions} executions ended in {timeout_s:.0f}s")
            await asyncio.sleep(0.001)
        return time.perf_counter() - started
