"""A filtered list page among 100,000 executions, the filtered status at 0.1%, vs an unfiltered page.

procengine: `procengine serve` in its own process. One real execution is started over the front door and left
to complete; its execution hash is then copied to 100,000 ids with their index entries, exactly as the engine
writes them (bench/copies.py; index edits from procengine.store.indexes), 0.1% of them
`paused` and the rest `completed`: the list reads hashes and indexes only, so copies read as real ones, and
seeding takes a second where starting 100,000 would take minutes. Then `GET .../executions/processes?limit=50`
with `status=paused` (100 matches, at most one page's worth in any window of 100,000) and without a filter,
back to back on a few keep-alive connections, one window each.

The figure is the filtered page's p99; the baseline is the unfiltered page's p99 in the same run. A list that
scanned and filtered would read about 1,000 hashes per paused execution shown (50,000 for a full page); one
that reads the status index reads 50.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from bench.common import Context, Figure, Serve, chain_definition
from bench.copies import Copy, completed_hash, list_pages, page_ms, write_copies
from bench.loadgen import close_all, pool, register, start_executions
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
            template = await completed_hash(ctx, PREFIX, first)
        finally:
            await close_all(clients)
        await _seed(ctx, template, process_id, first, total)
        paused = sum(_status(i) == "paused" for i in range(first + 1, first + total))
        filtered = await list_pages(serve.url, CONNECTIONS, seconds, f"status=paused&limit={PAGE}")
        unfiltered = await list_pages(serve.url, CONNECTIONS, seconds, f"limit={PAGE}")
    for label, r in (("filtered", filtered), ("unfiltered", unfiltered)):
        if r.errors or r.ok == 0:
            raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
    p99, base = page_ms(filtered, 99), page_ms(unfiltered, 99)
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
                f"{seconds:g}s each; p50 {page_ms(filtered, 50):.2f} vs {page_ms(unfiltered, 50):.2f} ms; "
                f"{filtered.per_second:,.0f} vs {unfiltered.per_second:,.0f} pages/s"
            ),
            details={"executions": total, "paused": paused, "page": PAGE},
        )
    ]


def _seed(ctx: Context, template: dict[bytes, bytes], process_id: int, first: int, total: int) -> Awaitable[None]:
    """Copies of the template hash under ids after `first`, 0.1% of them paused."""
    keys = Keys(PREFIX)

    def copy(execution_id: int) -> Copy:
        status = _status(execution_id)
        fields: dict[Any, Any] = {**template, b"status": status, b"stoppedAt": ""}
        return fields, indexes.created(keys, Indexed("default", execution_id, process_id), status)

    return write_copies(ctx, PREFIX, first, total, copy)


def _status(execution_id: int) -> str:
    return "paused" if execution_id % round(1 / SHARE) == 0 else "completed"
