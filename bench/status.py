"""Status reads per second (GET .../status), vs a bare aiohttp JSON endpoint.

procengine: `procengine serve` in its own process with 1,000 running executions (parked on a wait-signal,
so the figure is the read path, not stepping); the load generator reads their status round robin on a
fixed number of keep-alive connections, back to back (closed loop), for a fixed window after a warm-up.
Their actors are live, so the answers come from the actors' copy of what was last written (an execution
without a live actor here is read from Redis: the execution and thread hashes in one round trip).

Baseline: the bare aiohttp app answering a fixed JSON body of the same size on the same path, same client,
same connections, same window, on the same event loop as procengine's serve (uvloop). Three rounds
alternate between the two (both servers up; the idle one costs nothing), and the figure is the median
round's ratio: the shared machine drifts by 20% between windows, which alternating rounds cancel. One more
round against the bare app on asyncio's own loop (aiohttp as it comes) is reported in the notes.
"""

from __future__ import annotations

import os

from bench.baselines import BareHttp
from bench.common import Context, CpuMeter, Figure, Serve, parked_definition, percentile
from bench.latency import answer_sizes
from bench.loadgen import Request, Run, close_all, closed_loop, path, pool, register, start_executions

TARGET = 0.5
CONNECTIONS = 16
ROUNDS = 3


def reads(ids: list[int]) -> object:
    def make(index: int) -> Request:
        return ("GET", path(ids[index % len(ids)], "status"), None)

    return make


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    running = ctx.n(1000, 200)
    seconds = ctx.seconds(4.0, 1.0)
    engine_runs: list[Run] = []
    bare_runs: list[Run] = []
    engine_cpu: list[CpuMeter] = []
    bare_cpu: list[CpuMeter] = []
    with Serve(ctx, "status", prefix="status") as serve:
        clients = await pool(serve.url, 16)
        try:
            process_id = await register(clients[0], parked_definition("parked"))
            ids = await start_executions(clients, process_id, running)
            sizes = await answer_sizes(clients[0], process_id)
        finally:
            await close_all(clients)
        with BareHttp(ctx, sizes, event_loop="uvloop") as bare:
            # alternate rounds, both servers up (the idle one costs nothing): a drift of the shared machine
            # then hits both sides of a round alike; the ratio is the median of the rounds'
            for _ in range(ROUNDS):
                meter = CpuMeter({"server": serve.pid, "redis": ctx.redis_pid, "client": os.getpid()})
                engine_runs.append(await closed_loop(serve.url, CONNECTIONS, seconds, reads(ids), during=meter))  # type: ignore[arg-type]
                engine_cpu.append(meter)
                meter = CpuMeter({"server": bare.pid, "client": os.getpid()})
                bare_runs.append(await closed_loop(bare.url, CONNECTIONS, seconds, reads(ids), during=meter))  # type: ignore[arg-type]
                bare_cpu.append(meter)
        # context: the bare app as aiohttp comes, on asyncio's own loop (procengine stays on uvloop, its default)
        with BareHttp(ctx, sizes, event_loop="asyncio") as bare_stock:
            other_engine = await closed_loop(serve.url, CONNECTIONS, seconds, reads(ids))  # type: ignore[arg-type]
            other_bare = await closed_loop(bare_stock.url, CONNECTIONS, seconds, reads(ids))  # type: ignore[arg-type]
    for label, runs in (("procengine", engine_runs), ("bare", bare_runs)):
        for r in runs:
            if r.errors or r.ok == 0:
                raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
    shares = [e.per_second / b.per_second for e, b in zip(engine_runs, bare_runs, strict=True)]
    middle = sorted(range(ROUNDS), key=lambda i: shares[i])[ROUNDS // 2]
    engine, base, share = engine_runs[middle], bare_runs[middle], shares[middle]
    return [
        Figure(
            name="status reads/s",
            value=engine.per_second,
            unit="reads/s",
            baseline=base.per_second,
            baseline_label=f"bare aiohttp GET on uvloop too, {sizes['status']} B body",
            ratio=share,
            target=f">= {TARGET:.0%} of bare aiohttp",
            passed=share >= TARGET,
            notes=(
                f"{running} running executions, {CONNECTIONS} keep-alive connections, {ROUNDS} alternating rounds "
                f"of {seconds:g}s, the median round shown; ratios {', '.join(f'{r:.2f}' for r in shares)}; "
                f"p50/p99 {_ms(engine, 50):.2f}/{_ms(engine, 99):.2f} ms "
                f"vs bare {_ms(base, 50):.2f}/{_ms(base, 99):.2f} ms; "
                f"CPU (cores) procengine {_cpu(engine_cpu[middle])}, bare {_cpu(bare_cpu[middle])}; "
                f"against the bare app on asyncio's own loop: {other_engine.per_second:,.0f} vs "
                f"{other_bare.per_second:,.0f}/s = {other_engine.per_second / other_bare.per_second:.2f}"
            ),
            details={
                "rounds": [
                    {"reads_per_s": e.per_second, "bare_reads_per_s": b.per_second, "ratio": r}
                    for e, b, r in zip(engine_runs, bare_runs, shares, strict=True)
                ],
                "bare_on_asyncio_loop": {
                    "reads_per_s": other_engine.per_second,
                    "bare_reads_per_s": other_bare.per_second,
                },
                "body_bytes": sizes["status"],
                "cpu_cores": {"procengine_run": engine_cpu[middle].share, "bare_run": bare_cpu[middle].share},
            },
        )
    ]


def _cpu(meter: CpuMeter) -> str:
    return " ".join(f"{name} {share:.2f}" for name, share in meter.share.items())


def _ms(run: Run, q: float) -> float:
    return 1000 * percentile(run.latencies_s.get("GET", []), q)
