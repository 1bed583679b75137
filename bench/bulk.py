"""A bulk pause of 10,000 running executions (issue 23, point 2): the time until every one is durably paused, and the
p99 of status reads of OTHER executions meanwhile, against that p99 with no job (the baseline).

`procengine serve` in its own process; 10,000 executions parked on a wait-signal (one process) and 200 others (another
process) whose status a reader reads back to back on 2 keep-alive connections. First a window with no job: the
baseline p99. Then `POST …/bulk-operations {action: pause, filter: {processID, status: running}}`, and the job read
until it is `completed`: each of its items is the single pause, answered after the paused snapshot is durable, so
`completed` is "acknowledged durable for all" (checked: every execution's stored status is paused). The reader runs
through the job; its p99 is the figure, shown with the baseline as a ratio.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from bench.common import BASE, Context, Figure, Serve, parked_definition, percentile
from bench.loadgen import Client, Connection, close_all, pool, register

TARGET_S = 2.0
TARGET_P99_MS = 15.0
OTHERS = 200
READERS = 2
BATCH = 1000


async def _start(clients: list[Client], process_id: int, count: int) -> list[int]:
    """`count` executions through the batch start (1,000 a request), on several connections; RuntimeError naming
    why, with how many, if some did not start."""
    sizes = [min(BATCH, count - first) for first in range(0, count, BATCH)]
    why: Counter[str] = Counter()

    async def batch(index: int) -> list[int]:
        doc = {"items": [{"processID": process_id} for _ in range(sizes[index])]}
        answer = await clients[index % len(clients)].call("POST", BASE + "/executions/processes/batch", doc)
        for item in answer["items"]:
            if item["outcome"] != "started":
                error = item.get("error") or {}
                why[f"{item['outcome']}: {error.get('code', '')} {str(error.get('message', ''))[:120]}"] += 1
        return [item["executionID"] for item in answer["items"] if item["outcome"] == "started"]

    found: list[int] = []
    for first in range(0, len(sizes), len(clients)):
        for ids in await asyncio.gather(*(batch(i) for i in range(first, min(first + len(clients), len(sizes))))):
            found += ids
    if len(found) != count:
        raise RuntimeError(f"started {len(found)} of {count}: {dict(why)}")
    return found


class Reader:
    """Reads the status of `ids` round robin on a few connections, back to back, recording each latency."""

    def __init__(self, url: str, ids: list[int]) -> None:
        self.url = url
        self.ids = ids
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = False

    async def run(self) -> None:
        conns = [await Connection.open(self.url) for _ in range(READERS)]
        counter = 0

        async def loop(conn: Connection) -> None:
            nonlocal counter
            while not self._stop:
                execution_id = self.ids[counter % len(self.ids)]
                counter += 1
                began = time.perf_counter()
                status, _ = await conn.request("GET", f"{BASE}/executions/processes/{execution_id}/status", None)
                if status == 200:
                    self.latencies.append(time.perf_counter() - began)
                else:
                    self.errors += 1

        try:
            await asyncio.gather(*(loop(c) for c in conns))
        finally:
            for conn in conns:
                await conn.close()

    def stop(self) -> None:
        self._stop = True


async def _read_for(url: str, ids: list[int], seconds: float) -> Reader:
    reader = Reader(url, ids)
    task = asyncio.create_task(reader.run())
    await asyncio.sleep(seconds)
    reader.stop()
    await task
    return reader


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    count = ctx.n(10_000, 1_000)
    with Serve(ctx, "bulk", prefix="bulk") as serve:
        clients = await pool(serve.url, 4)
        try:
            bulk_process = await register(clients[0], parked_definition("bulk-target"))
            other_process = await register(clients[0], parked_definition("bulk-other"))
            others = await _start(clients, other_process, OTHERS)
            targets = await _start(clients, bulk_process, count)
            if len(targets) != count:
                raise RuntimeError(f"started {len(targets)} of {count}")
            await asyncio.sleep(1.0)  # every one reaches its wait (the starts' own writes settle)
            baseline = await _read_for(serve.url, others, ctx.seconds(3.0, 1.0))

            reader = Reader(serve.url, others)
            reading = asyncio.create_task(reader.run())
            await asyncio.sleep(0.3)  # the reader is under way before the job
            began = time.perf_counter()
            body = {"action": "pause", "filter": {"processID": bulk_process, "status": "running"}, "reason": "bench"}
            created = await clients[0].call("POST", BASE + "/bulk-operations", body)
            posted = time.perf_counter() - began
            job = created
            while True:
                job = await clients[1].call("GET", f"{BASE}/bulk-operations/{created['jobID']}")
                if job["status"] != "running":
                    break
                await asyncio.sleep(0.02)
            took = time.perf_counter() - began
            await asyncio.sleep(0.2)
            reader.stop()
            await reading
            paused = await _stored_paused(ctx, targets)
        finally:
            await close_all(clients)
    if job["status"] != "completed" or job["done"] != count or paused != count:
        raise RuntimeError(f"job {job}: {paused} of {count} stored paused")
    p99 = 1000 * percentile(reader.latencies, 99)
    p99_base = 1000 * percentile(baseline.latencies, 99)
    return [
        Figure(
            name=f"bulk pause of {count:,}: all durable",
            value=took,
            unit="s",
            baseline=None,
            baseline_label="",
            ratio=None,
            target=f"<= {TARGET_S:g} s",
            passed=took <= TARGET_S if not ctx.quick else None,
            notes=(
                f"{count} running executions parked on a wait-signal, one job (filter processID + status running, "
                f"matched {job['matched']}); POST answered in {posted * 1000:.0f} ms (the filter resolved); from the "
                f"POST to the job completed, every item's pause answered after its snapshot was durable, and every "
                f"execution's stored status read back paused: {count / took:,.0f} pauses/s"
            ),
            details={"seconds": took, "post_ms": posted * 1000, "executions": count},
        ),
        Figure(
            name="status p99 during a bulk pause",
            value=p99,
            unit="ms",
            baseline=p99_base,
            baseline_label="status p99 of the same executions with no job",
            ratio=p99 / p99_base if p99_base else None,
            target=f"<= {TARGET_P99_MS:g} ms",
            passed=p99 <= TARGET_P99_MS,
            notes=(
                f"{OTHERS} other running executions read round robin on {READERS} keep-alive connections, back to "
                "back: "
                f"{len(reader.latencies)} reads during the job (p50 {1000 * percentile(reader.latencies, 50):.2f} ms), "
                f"{len(baseline.latencies)} without (p50 {1000 * percentile(baseline.latencies, 50):.2f} ms); "
                f"{reader.errors + baseline.errors} errors"
            ),
            details={"p99_ms": p99, "baseline_p99_ms": p99_base, "reads": len(reader.latencies)},
        ),
    ]


async def _stored_paused(ctx: Context, ids: list[int]) -> int:
    """How many of `ids` Redis holds as paused (read straight from their hashes)."""
    redis = ctx.client()
    try:
        paused = 0
        for first in range(0, len(ids), 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for execution_id in ids[first : first + 1000]:
                    pipe.hget(f"bulk:exec:{{{execution_id}}}", "status")
                paused += sum(1 for status in await pipe.execute() if status == b"paused")
        return paused
    finally:
        await redis.aclose()
