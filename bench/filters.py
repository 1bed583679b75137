"""A list page filtered on status + one attribute + a start-time range among 100,000 executions, vs an unfiltered
page (issue 23).

procengine: `procengine serve` in its own process. A definition that declares the attribute `customer` (keyword)
is registered and one real execution of it is started over the front door and left to complete; its execution
hash is then copied to 100,000 ids with their index entries exactly as the engine writes them (key names from
procengine.store.keys, index edits from procengine.store.indexes and procengine.store.search) by bench/copies.py
does: the list reads hashes and indexes only, so copies read as real ones. Each copy has `customer` = one of 10
values, a start time 10 ms after the one before, and one in three is `failed` (the others `completed`). Then
`GET .../executions/processes?status=failed&attr.customer=c3&startedAfter=<the newest quarter>&limit=50` and the
same page without a filter, on a few keep-alive connections, in windows that alternate (4 of each).

The figure is the filtered page's p99; the baseline is the unfiltered page's p99 in the same run (goal: at most
2x). The plan (node/search.py) drives the page with the attribute's index (10% of the executions, the smallest),
and checks the status and the start time of each batch of its ids with one ZMSCORE each.
"""

from __future__ import annotations

from typing import Any

from bench.common import Context, Figure, Serve, chain_definition
from bench.copies import Copy, completed_hash, list_pages, page_ms, write_copies
from bench.loadgen import Run, close_all, pool, register, start_executions
from procengine.runtime.clock import iso, parse_iso
from procengine.store import indexes, search
from procengine.store.indexes import Indexed
from procengine.store.keys import Keys

PREFIX = "filters"
PAGE = 50
CONNECTIONS = 4
CUSTOMERS = 10
SPACING_MS = 10
ROUNDS = 4
TARGET = 2.0  # the filtered page's p99 at most twice the unfiltered one's


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    total = ctx.n(100_000, 20_000)
    seconds = ctx.seconds(4.0, 1.0)
    definition = {**chain_definition("filtered", 1), "attributes": {"customer": "keyword"}}
    with Serve(ctx, "filters", prefix=PREFIX) as serve:
        clients = await pool(serve.url, 1)
        try:
            process_id = await register(clients[0], definition)
            [first] = await start_executions(clients, process_id, 1, {"counter": 0})
            template = await completed_hash(ctx, PREFIX, first)
        finally:
            await close_all(clients)
        since = await _seed(ctx, template, process_id, first, total)
        query = f"status=failed&attr.customer=c3&startedAfter={since}&limit={PAGE}"
        filtered, unfiltered = Run(0.0), Run(0.0)
        for _ in range(ROUNDS):  # alternated, so that a burst of load elsewhere falls on both alike
            _merge(filtered, await list_pages(serve.url, CONNECTIONS, seconds / ROUNDS, query))
            _merge(unfiltered, await list_pages(serve.url, CONNECTIONS, seconds / ROUNDS, f"limit={PAGE}"))
    for label, r in (("filtered", filtered), ("unfiltered", unfiltered)):
        if r.errors or r.ok == 0:
            raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
    p99, base = page_ms(filtered, 99), page_ms(unfiltered, 99)
    return [
        Figure(
            name="list page filtered on status + attribute + time p99",
            value=p99,
            unit="ms",
            baseline=base,
            baseline_label=f"an unfiltered page of {PAGE}",
            ratio=p99 / base,
            target=f"<= {TARGET:g}x the unfiltered page",
            passed=p99 <= TARGET * base,
            notes=(
                f"{total:,} executions, {CUSTOMERS} customers, 1 in 3 failed, the newest quarter by start time; "
                f"pages of {PAGE}, {CONNECTIONS} connections, {seconds:g}s each in {ROUNDS} alternating windows; "
                f"p50 {page_ms(filtered, 50):.2f} vs {page_ms(unfiltered, 50):.2f} ms; "
                f"{filtered.per_second:,.0f} vs {unfiltered.per_second:,.0f} pages/s"
            ),
            details={"executions": total, "page": PAGE, "query": query},
        )
    ]


async def _seed(ctx: Context, template: dict[bytes, bytes], process_id: int, first: int, total: int) -> str:
    """Copies of the template hash under ids after `first`, indexed as the engine indexes them; the start time of
    the newest quarter (ISO-8601)."""
    keys = Keys(PREFIX)
    started = parse_iso(template[b"startedAt"].decode())
    error = '{"element":"s01","error":"no","type":"Declined","attempts":1}'

    def copy(execution_id: int) -> Copy:
        status = "failed" if execution_id % 3 == 0 else "completed"
        attributes = {"customer": ["keyword", f"c{execution_id % CUSTOMERS}"]}
        at = started + (execution_id - first) * SPACING_MS
        fields: dict[Any, Any] = {
            **template,
            b"status": status,
            b"startedAt": iso(at),
            b"attributes": search.encode_attributes(attributes),
        }
        edits = indexes.created(keys, Indexed("default", execution_id, process_id), status)
        edits += search.created(keys, "default", execution_id, at, attributes)
        if status == "failed":
            fields[b"error"] = error
            edits += search.written(keys, execution_id, {"tenant": "default"}, {"status": "failed"})
        return fields, edits

    await write_copies(ctx, PREFIX, first, total, copy)
    return iso(started + (total * 3 // 4) * SPACING_MS)


def _merge(into: Run, run: Run) -> None:
    into.seconds += run.seconds
    into.ok += run.ok
    into.errors += run.errors
    into.error_samples += run.error_samples
    for label, latencies in run.latencies_s.items():
        into.latencies_s.setdefault(label, []).extend(latencies)
