"""External task workers (issue 24, point 1): the round trip of one external task, and the steps/s of 4 workers x 16
against in-process tasks of the same run.

`procengine serve` in its own process on the run's Redis.

- Round trip: one execution whose thread is a chain of external `echo` tasks on the queue `rt`, served by this
  process as a bare HTTP worker on one keep-alive connection: fetch (long poll) -> complete -> fetch. The figure is
  the time from one fetch's answer to the next one's, which holds the complete's request, the engine taking the
  result and checkpointing the element, the next element starting (its task offered on the stream), and the
  blocked fetch being woken and answered: queued -> fetched -> completed -> the next element starts, around.
- Throughput: executions of a chain of 10 `echo` tasks, all started at once; in-process (the node's built-in
  `echo`) first, then the same chain with `queue: tp` served by 4 `procengine worker` processes x 16 concurrency
  (the built-in `echo` too). Steps/s = tasks run / the time from the first start to the last execution completed.
  The baseline is the in-process figure of the same run; the goal is >= 50% of it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from typing import Any

from bench.common import BASE, REPO, Context, CpuMeter, Figure, Serve, percentile
from bench.loadgen import Client, Connection, close_all, pool, register, start_executions

TARGET_RT_MS = 5.0
TARGET_SHARE = 0.5
WORKERS = 4
CONCURRENCY = 16
CHAIN = 10


def _chain(key: str, length: int, queue: str | None) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    for i in range(1, length + 1):
        element: dict[str, Any] = {"key": f"t{i:03d}", "type": "task", "handler": "echo", "input": {"n": str(i)}}
        if queue is not None:
            element["queue"] = queue
        if i < length:
            element["next"] = f"t{i + 1:03d}"
        elements.append(element)
    return {"key": key, "threads": [{"key": "main", "elements": elements}]}


async def _post(conn: Connection, path: str, doc: Any) -> Any:
    status, payload = await conn.request("POST", BASE + path, json.dumps(doc).encode())
    if status != 200:
        raise RuntimeError(f"POST {path}: {status} {payload[:300]!r}")
    return json.loads(payload)["data"]


async def _round_trips(url: str, client: Client, samples: int) -> list[float]:
    length = 100
    process = await register(client, _chain("rt", length, "rt"))
    conn = await Connection.open(url)
    gaps: list[float] = []
    try:
        while len(gaps) < samples:
            await start_executions([client], process, 1)
            fetch = {"queues": ["rt"], "workerId": "bench", "max": 1, "waitMs": 5000}
            last: float | None = None
            for _ in range(length):
                tasks = (await _post(conn, "/tasks/fetch", fetch))["tasks"]
                now = time.perf_counter()
                if not tasks:
                    raise RuntimeError("no task within 5 s")
                if last is not None:
                    gaps.append(now - last)
                last = now
                task = tasks[0]
                await _post(conn, f"/tasks/{task['taskId']}/complete", {"lockToken": task["lockToken"], "output": 1})
    finally:
        await conn.close()
    return gaps


async def _all_completed(client: Client, process_id: int, count: int, deadline_s: float) -> float:
    """Wait until none of the process's executions runs; when (perf_counter)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        page = await client.call("GET", f"{BASE}/executions/processes?status=running&processID={process_id}&limit=1")
        if not page["items"]:
            done = await client.call(
                "GET", f"{BASE}/executions/processes?status=completed&processID={process_id}&limit=500"
            )
            if len(done["items"]) < min(count, 500):
                raise RuntimeError(f"only {len(done['items'])} of {count} completed")
            return time.perf_counter()
        await asyncio.sleep(0.02)
    raise RuntimeError(f"not all {count} executions completed within {deadline_s:.0f} s")


async def _steps_per_s(clients: list[Client], definition: dict[str, Any], count: int) -> float:
    process = await register(clients[0], definition)
    began = time.perf_counter()
    await start_executions(clients, process, count)
    ended = await _all_completed(clients[0], process, count, 120)
    return count * CHAIN / (ended - began)


def _workers(url: str) -> list[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "procengine", "worker", "--url", url, "--queue", "tp",
        "--concurrency", str(CONCURRENCY), "--wait-ms", "2000", "--log-level", "WARNING",
    ]  # fmt: skip
    return [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(WORKERS)
    ]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    samples = ctx.n(1000, 200)
    count = ctx.n(400, 100)
    with Serve(ctx, "workers", prefix="workers") as serve:
        clients = await pool(serve.url, 8)
        try:
            gaps = await _round_trips(serve.url, clients[0], samples)
            pids = {"serve": serve.pid, "redis": ctx.redis_pid}
            with CpuMeter(pids) as in_cpu:
                in_process = await _steps_per_s(clients, _chain("tp-in", CHAIN, None), count)
            workers = _workers(serve.url)
            try:
                await asyncio.sleep(1.0)  # the workers are up and polling
                pids.update({f"worker{i}": w.pid for i, w in enumerate(workers)})
                with CpuMeter(pids) as ext_cpu:
                    external = await _steps_per_s(clients, _chain("tp-ext", CHAIN, "tp"), count)
            finally:
                _stop(workers)
        finally:
            await close_all(clients)
    p50 = 1000 * percentile(gaps, 50)
    share = external / in_process
    return [
        Figure(
            name="external task round trip p50",
            value=p50,
            unit="ms",
            baseline=None,
            baseline_label="",
            ratio=None,
            target=f"<= {TARGET_RT_MS:g} ms",
            passed=p50 <= TARGET_RT_MS,
            notes=(
                f"{len(gaps)} round trips (fetch answered -> complete -> next element's task fetched) of chains of "
                f"external echo tasks, one bare HTTP worker on a keep-alive connection on loopback; "
                f"p90 {1000 * percentile(gaps, 90):.2f} ms, p99 {1000 * percentile(gaps, 99):.2f} ms"
            ),
            details={"p50_ms": p50, "p99_ms": 1000 * percentile(gaps, 99), "samples": len(gaps)},
        ),
        Figure(
            name=f"external task steps/s, {WORKERS} workers x {CONCURRENCY}",
            value=external,
            unit="steps/s",
            baseline=in_process,
            baseline_label="in-process echo task steps/s of the same run",
            ratio=share,
            target=f">= {TARGET_SHARE:.0%} of in-process",
            passed=share >= TARGET_SHARE,
            notes=(
                f"{count} executions of a chain of {CHAIN} echo tasks started at once, to the last completed; "
                f"{WORKERS} `procengine worker` processes x {CONCURRENCY} (built-in echo) on the same 2 cores as the "
                f"engine and Redis; CPU (cores) in-process {in_cpu.share}, external {ext_cpu.share}"
            ),
            details={"external": external, "in_process": in_process, "executions": count},
        ),
    ]
