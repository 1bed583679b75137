"""A filtered list page among 100,000 executions, the filtered status at 0.1%, vs an unfiltered page.

procengine: `procengine serve` in its own process. One real execution is started over the front door and left
to complete; its execution hash is then copied to 100,000 ids with their index entries, exactly as the engine
writes them (key names from procengine.store.keys, index edits from procengine.store.indexes), 0.1% of them
`paused` and the rest `completed`: the list reads hashes and indexes only, so copies read as real ones, and
seeding takes a second where starting 100,000 would take minutes. Then `GET .../executions/processes?limit=50`
with `status=paused` (100 matches, at most one page's worth in any window of 100,000) and without a filter,
back to back on a few keep-alive connections, one window each.

The figure is the filtered page's p99; the baseline is the unfiltered page's p99 in the same run. A list that
scanned and filtered would read about 1,000 hashes per paused execution shown (50,000 for a full page); one
that reads the status index reads 50.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.common import Context, Figure, Serve, chain_definition, percentile
from bench.loadgen import BASE, Request, Run, close_all, closed_loop, pool, register, start_executions
from procengine.store import indexes
from procengine.store.indexes import Indexed
from procengine.store.keys import Keys

PREFIX = "listing"
SHARE = 0.001
PAGE = 50
CONNECTIONS = 4
TARGET = 2.0  # the filtered page's p99 at most twice the unfiltered one's


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    total = ctx.n(100_000, 20_000)
    seconds = ctx.seconds(4.0, 1.0)
    with Serve(ctx, "listing", prefix=PREFIX) as serve:
        clients = await pool(serve.url, 1)
        try:
            process_id = await register(clients[0], chain_definition("listed", 1))
            [first] = await start_executions(clients, process_id, 1, {"counter": 0})
            template = await _completed(ctx, first)
        finally:
            await close_all(clients)
        paused = await _seed(ctx, template, process_id, first, total)
        filtered = await _pages(serve.url, seconds, f"status=paused&limit={PAGE}")
        unfiltered = await _pages(serve.url, seconds, f"limit={PAGE}")
    for label, r in (("filtered", filtered), ("unfiltered", unfiltered)):
        if r.errors or r.ok == 0:
            raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
    p99, base = _ms(filtered, 99), _ms(unfiltered, 99)
    return [
        Figure(
            name="filtered list page p99",
            value=p99,
            unit="ms",
            baseline=base,
            baseline_label=f"an unfiltered page of {PAGE}",
            ratio=p99 / base,
            target=f"<= {TARGET:g}x the unfiltered page",
            passed=p99 <= TARGET * base,
            notes=(
                f"{total:,} executions, {paused} paused ({SHARE:.1%}); pages of {PAGE}, {CONNECTIONS} connections, "
                f"{seconds:g}s each; p50 {_ms(filtered, 50):.2f} vs {_ms(unfiltered, 50):.2f} ms; "
                f"{filtered.per_second:,.0f} vs {unfiltered.per_second:,.0f} pages/s"
            ),
            details={"executions": total, "paused": paused, "page": PAGE},
        )
    ]


async def _completed(ctx: Context, execution_id: int) -> dict[bytes, bytes]:
    """The execution hash of the real execution, once it has completed (woken by each entry of its log)."""
    redis = ctx.client()
    keys = Keys(PREFIX).execution(execution_id)
    last = "0-0"
    try:
        async with asyncio.timeout(30):
            while (found := await redis.hgetall(keys.execution)).get(b"status") != b"completed":
                for _, entries in await redis.xread({keys.log: last}, block=1000) or []:
                    last = entries[-1][0]
        return found
    finally:
        await redis.aclose()


async def _seed(ctx: Context, template: dict[bytes, bytes], process_id: int, first: int, total: int) -> int:
    """Copies of the template hash under ids after `first`, indexed as the engine indexes them; how many paused."""
    keys = Keys(PREFIX)
    every = round(1 / SHARE)
    paused = 0
    redis = ctx.client()
    try:
        for chunk in range(first + 1, first + total, 5000):
            async with redis.pipeline(transaction=False) as pipe:
                for execution_id in range(chunk, min(chunk + 5000, first + total)):
                    status = "paused" if execution_id % every == 0 else "completed"
                    paused += status == "paused"
                    fields: dict[Any, Any] = {**template, b"status": status, b"stoppedAt": ""}
                    pipe.hset(keys.execution(execution_id).execution, mapping=fields)
                    for op in indexes.created(keys, Indexed("default", execution_id, process_id), status):
                        pipe.execute_command(op.command, op.key, *op.args)
                await pipe.execute()
        await redis.set(keys.sequence("execution"), first + total)
    finally:
        await redis.aclose()
    return paused


async def _pages(url: str, seconds: float, query: str) -> Run:
    def make(_: int) -> Request:
        return ("GET", f"{BASE}/executions/processes?{query}", None)

    return await closed_loop(url, CONNECTIONS, seconds, make)


def _ms(run: Run, q: float) -> float:
    return 1000 * percentile(run.latencies_s.get("GET", []), q)
