"""Status reads per second (GET .../status), vs a bare aiohttp JSON endpoint.

procengine: `procengine serve` in its own process with 1,000 running executions (parked on a wait-signal,
so the figure is the read path, not stepping); the load generator reads their status round robin on a
fixed number of keep-alive connections, back to back (closed loop), for a fixed window after a warm-up.
Each read is one Redis pipeline (HGETALL of the execution hash, the state hash and the threads hash) and the
status view.

Baseline: the bare aiohttp app answering a fixed JSON body of the same size on the same path, same client,
same connections, same window.
"""

from __future__ import annotations

import os

from bench.baselines import BareHttp
from bench.common import Context, CpuMeter, Figure, Serve, parked_definition, percentile, ratio
from bench.latency import answer_sizes
from bench.loadgen import Request, Run, close_all, closed_loop, path, pool, register, start_executions

TARGET = 0.5
CONNECTIONS = 16


def reads(ids: list[int]) -> object:
    def make(index: int) -> Request:
        return ("GET", path(ids[index % len(ids)], "status"), None)

    return make


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    running = ctx.n(1000, 200)
    seconds = ctx.seconds(8.0, 2.0)
    with Serve(ctx, "status", prefix="status") as serve:
        clients = await pool(serve.url, 16)
        try:
            process_id = await register(clients[0], parked_definition("parked"))
            ids = await start_executions(clients, process_id, running)
            sizes = await answer_sizes(clients[0], process_id)
        finally:
            await close_all(clients)
        engine_cpu = CpuMeter({"server": serve.pid, "redis": ctx.redis_pid, "client": os.getpid()})
        engine = await closed_loop(serve.url, CONNECTIONS, seconds, reads(ids), during=engine_cpu)  # type: ignore[arg-type]
    with BareHttp(ctx, sizes) as bare:
        bare_cpu = CpuMeter({"server": bare.pid, "client": os.getpid()})
        base = await closed_loop(bare.url, CONNECTIONS, seconds, reads(ids), during=bare_cpu)  # type: ignore[arg-type]
    for label, r in (("procengine", engine), ("bare", base)):
        if r.errors or r.ok == 0:
            raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
    share = ratio(engine.per_second, base.per_second)
    return [
        Figure(
            name="status reads/s",
            value=engine.per_second,
            unit="reads/s",
            baseline=base.per_second,
            baseline_label=f"bare aiohttp GET, {sizes['status']} B body",
            ratio=share,
            target=f">= {TARGET:.0%} of bare aiohttp",
            passed=share is not None and share >= TARGET,
            notes=(
                f"{running} running executions, {CONNECTIONS} keep-alive connections, {seconds:g}s window; "
                f"p50/p99 {_ms(engine, 50):.2f}/{_ms(engine, 99):.2f} ms "
                f"vs bare {_ms(base, 50):.2f}/{_ms(base, 99):.2f} ms; "
                f"CPU (cores) procengine run {_cpu(engine_cpu)}, bare run {_cpu(bare_cpu)}"
            ),
            details={
                "reads": engine.ok,
                "bare_reads": base.ok,
                "body_bytes": sizes["status"],
                "cpu_cores": {"procengine_run": engine_cpu.share, "bare_run": bare_cpu.share},
            },
        )
    ]


def _cpu(meter: CpuMeter) -> str:
    return " ".join(f"{name} {share:.2f}" for name, share in meter.share.items())


def _ms(run: Run, q: float) -> float:
    return 1000 * percentile(run.latencies_s.get("GET", []), q)
