"""The chaos run's task handler, loaded by each node with `procengine serve --handlers bench.chaos_handlers`.

`chaos-work` sleeps `ms` and records each run of it as a side effect in a Redis of its own (not the engine's:
`CHAOS_EFFECTS_URL`), so that the audit can count what the tasks did without trusting the engine's word for it:

    RPUSH chaos:effects "S <run> <idempotency key> <node> <pid> <time>"   before the work
    RPUSH chaos:effects "E <run> <time> <ok|cancelled>"                    after it (not if the process is killed)
    HINCRBY chaos:runs <idempotency key> 1                                 a counter per run of one attempt

The idempotency key is `execution:element:executionOrder:attempt`: two runs of one key that overlap in time are
one attempt running twice at once (bench/chaos_audit.py). Times are the host's wall clock (every node is on it).
Without `CHAOS_EFFECTS_URL` the handler only sleeps.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any, Final

from redis.asyncio import BlockingConnectionPool, Redis

from procengine.tasks import TaskContext, task

EFFECTS_URL_ENV: Final = "CHAOS_EFFECTS_URL"
NODE_ENV: Final = "CHAOS_NODE"
EFFECTS_KEY: Final = "chaos:effects"
RUNS_KEY: Final = "chaos:runs"

_client: tuple[asyncio.AbstractEventLoop, Redis] | None = None


def _effects() -> Redis | None:
    """The side-effect Redis of this process's loop, made on first use (never at import)."""
    global _client
    url = os.environ.get(EFFECTS_URL_ENV)
    if not url:
        return None
    loop = asyncio.get_running_loop()
    if _client is None or _client[0] is not loop:
        # a blocking pool: hundreds of tasks at once wait for one of its connections (the default pool raises
        # "Too many connections" past 100, which failed the tasks of a chaos run)
        pool = BlockingConnectionPool.from_url(url, max_connections=32, timeout=10.0, socket_timeout=5.0)
        _client = (loop, Redis(connection_pool=pool))
    return _client[1]


@task("chaos-work")
async def work(task_input: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    ms = int(task_input.get("ms", 0))
    redis = _effects()
    if redis is None:
        await asyncio.sleep(ms / 1000)
        return {"slept": ms}
    run = uuid.uuid4().hex[:16]
    node = os.environ.get(NODE_ENV, "node")
    async with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(EFFECTS_KEY, f"S {run} {ctx.idempotency_key} {node} {os.getpid()} {time.time():.6f}")
        pipe.hincrby(RUNS_KEY, ctx.idempotency_key, 1)
        await pipe.execute()
    outcome = "cancelled"  # stopped by the engine (pause past its grace, cancel, a lost execution)
    try:
        await asyncio.sleep(ms / 1000)
        outcome = "ok"
    finally:
        # the end of the run is recorded even when the engine cancels it; shielded, so that a second cancel
        # cannot cut the record short
        await asyncio.shield(redis.rpush(EFFECTS_KEY, f"E {run} {time.time():.6f} {outcome}"))
    return {"slept": ms}
