"""Many executions in a second: one real execution's hash copied to new ids with their index entries, exactly as
the engine writes them, for benches that measure reads (lists, filters) among 100,000 executions, where starting
them all would take minutes. Copies read as real ones: a list reads hashes and indexes only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from bench.common import Context, percentile
from bench.loadgen import BASE, Request, Run, closed_loop
from procengine.store.indexes import IndexOp
from procengine.store.keys import Keys

__all__ = ["Copy", "completed_hash", "list_pages", "page_ms", "write_copies"]

Copy = tuple[dict[Any, Any], Sequence[IndexOp]]
"""A copy's execution hash and the index edits the engine makes for it."""

CHUNK = 5000


async def completed_hash(ctx: Context, prefix: str, execution_id: int) -> dict[bytes, bytes]:
    """The execution hash of a real execution, once it has completed (woken by each entry of its log)."""
    redis = ctx.client()
    keys = Keys(prefix).execution(execution_id)
    last = "0-0"
    try:
        async with asyncio.timeout(30):
            while (found := await redis.hgetall(keys.execution)).get(b"status") != b"completed":
                for _, entries in await redis.xread({keys.log: last}, block=1000) or []:
                    last = entries[-1][0]
        return found
    finally:
        await redis.aclose()


async def write_copies(ctx: Context, prefix: str, first: int, total: int, copy: Callable[[int], Copy]) -> None:
    """The executions `copy(id)` makes for the ids after `first` (`total` less one of them), pipelined in chunks;
    the id sequence moves past them, as the engine's would."""
    keys = Keys(prefix)
    redis = ctx.client()
    try:
        for chunk in range(first + 1, first + total, CHUNK):
            async with redis.pipeline(transaction=False) as pipe:
                for execution_id in range(chunk, min(chunk + CHUNK, first + total)):
                    fields, edits = copy(execution_id)
                    pipe.hset(keys.execution(execution_id).execution, mapping=fields)
                    for op in edits:
                        pipe.execute_command(op.command, op.key, *op.args)
                await pipe.execute()
        await redis.set(keys.sequence("execution"), first + total)
    finally:
        await redis.aclose()


async def list_pages(url: str, connections: int, seconds: float, query: str) -> Run:
    """`GET …/executions/processes?query`, back to back on `connections` keep-alive connections for `seconds`."""

    def make(_: int) -> Request:
        return ("GET", f"{BASE}/executions/processes?{query}", None)

    return await closed_loop(url, connections, seconds, make)


def page_ms(run: Run, q: float) -> float:
    """The `q`th percentile of a run of list pages, in milliseconds."""
    return 1000 * percentile(run.latencies_s.get("GET", []), q)
