"""Flat latency (issue 21, goal 2): pause/resume p99 and status reads/s at 1,000 and at 50,000 running
executions, in the same run, and the ratio 50k / 1k beside the targets.

One `procengine serve`: 1,000 executions are started (live actors parked on a wait-signal, as in
bench/latency.py and bench/status.py), then both figures are measured; then 49,000 more are started in the
same serve and the same figures measured again. The same serve on both sides, so that what differs is the
number of executions the node runs, not its warm-up.

- pause / resume: one of the running executions (spread over all of them), paused then resumed, RATE_OPS
  operations/s, open loop (bench/loadgen.py), latency from the scheduled time; target p99 <= 10 ms at 50k.
- status reads/s: GET .../status of the running executions round robin (all of them), CONNECTIONS keep-alive
  connections, closed loop; ROUNDS rounds alternating with the bare aiohttp app (same size body, uvloop), the
  median round. Target: 50k reads/s >= 0.9x the 1k figure. The shared machine drifts between the two phases,
  so the notes also give the ratio of the ratios to the bare app (each phase's own baseline).
- The node's event-loop lag (`procengine_event_loop_lag_seconds`, runtime/metrics.py), read from /metrics
  before and after each phase's windows: its p99 and max over the phase, when the node exposes it.

    .venv/bin/python -m bench --only flat
    .venv/bin/python -m bench --only flat --serve-env PROCENGINE_RECONCILE_INTERVAL_MS=600000   # reconciler off
    .venv/bin/python -m bench --only flat --profile      # and py-spy on the serve in each phase (bench/spy.py)

--quick: 200 and 5,000 executions, shorter windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from bench.baselines import BareHttp
from bench.common import Context, CpuMeter, Figure, Serve, parked_definition, percentile
from bench.latency import answer_sizes, metrics_count
from bench.loadgen import (
    Client,
    Operation,
    Request,
    Run,
    close_all,
    closed_loop,
    open_loop,
    path,
    pool,
    register,
    start_executions,
)
from bench.spy import Spy

TARGET_P99_MS = 10.0
TARGET_READS = 0.9
RATE_OPS = 100
CONNECTIONS = 16
ROUNDS = 3
LAG_METRIC = "procengine_event_loop_lag_seconds"
GC_METRIC = "procengine_gc_pause_seconds"


def spread(ids: list[int], index: int) -> int:
    """The index-th execution of a walk that visits all of them, not only the first (a prime stride)."""
    return ids[(index * 7919) % len(ids)]


def operations(ids: list[int]) -> Any:
    def make(index: int) -> Operation:
        execution = spread(ids, index)
        return [
            ("pause", ("POST", path(execution, "pause"), None)),
            ("resume", ("POST", path(execution, "resume"), None)),
        ]

    return make


def reads(ids: list[int]) -> Any:
    def make(index: int) -> Request:
        return ("GET", path(spread(ids, index), "status"), None)

    return make


@dataclass
class Phase:
    running: int
    latency: Run
    status: list[Run] = field(default_factory=list)
    bare: list[Run] = field(default_factory=list)
    cpu: list[CpuMeter] = field(default_factory=list)
    lag: dict[str, float] = field(default_factory=dict)
    gc_s: dict[str, float] = field(default_factory=dict)
    """Seconds the node's garbage collector held it during the status rounds, by generation."""
    profile: str = ""
    latency_cpu: CpuMeter | None = None

    def cpu_ms_per_operation(self) -> float:
        """The server's CPU per pause+resume (ms): unlike the latency, it does not depend on what else the machine
        runs, so that it compares the two phases on a busy machine too."""
        share = self.latency_cpu.share.get("server", math.nan) if self.latency_cpu else math.nan
        return 1000 * share * self.latency.seconds / max(1, self.latency.ok // 2)

    def cpu_us_per_read(self, i: int | None = None) -> float:
        i = self.median_round() if i is None else i
        return 1e6 * self.cpu[i].share.get("server", math.nan) / max(1.0, self.status[i].per_second)

    def rounds_us(self) -> str:
        """The server's CPU per read round by round: each round reads from the first execution again, so at 50,000
        the first round renders what it reads and the later ones find more of it kept (rendered once per write)."""
        return ", ".join(f"{self.cpu_us_per_read(i):.0f}" for i in range(len(self.status)))

    def ms(self, verb: str, q: float) -> float:
        return 1000 * percentile(self.latency.latencies_s.get(verb, []), q)

    def median_round(self) -> int:
        shares = self.shares()
        return sorted(range(len(shares)), key=lambda i: shares[i])[len(shares) // 2]

    def shares(self) -> list[float]:
        return [e.per_second / b.per_second for e, b in zip(self.status, self.bare, strict=True)]

    def reads_per_s(self) -> float:
        return sorted(r.per_second for r in self.status)[len(self.status) // 2]

    def share(self) -> float:
        return self.shares()[self.median_round()]


async def histogram(client: Client, name: str) -> dict[float, float]:
    """The cumulative buckets (le -> count) of a histogram on /metrics; empty if the node has none."""
    _, payload = await client.conn.request("GET", "/metrics")
    buckets: dict[float, float] = {}
    for line in payload.decode().splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[math.inf if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def lag_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """p50, p99 and the highest bucket reached (upper bounds, in ms) of the lag samples between two reads."""
    if not after:
        return {}
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1]
    if total <= 0:
        return {}
    out = {"samples": total}
    for q in (50, 99):
        out[f"p{q}_ms"] = next(1000 * le for le, n in delta if n >= total * q / 100)
    out["max_ms"] = next(1000 * le for le, n in delta if n >= total)
    return out


async def gc_seconds(client: Client) -> dict[str, float]:
    """The garbage collector's pause seconds so far, by generation (`procengine_gc_pause_seconds_sum`)."""
    _, payload = await client.conn.request("GET", "/metrics")
    found: dict[str, float] = {}
    for line in payload.decode().splitlines():
        if line.startswith(f"{GC_METRIC}_sum{{"):
            generation = line.split('generation="', 1)[1].split('"', 1)[0]
            found[generation] = float(line.rsplit(" ", 1)[1])
    return found


async def settled(client: Client, quiet_s: float = 2.0, within_s: float = 120.0) -> None:
    """Wait until the node has written every new execution's first checkpoints (a start answers before its actor
    has run to its wait): no checkpoint for `quiet_s`, so that the next phase measures 50,000 parked executions,
    not the backlog of their starts."""
    deadline = time.monotonic() + within_s
    last = -1.0
    while time.monotonic() < deadline:
        count = await metrics_count(client, "procengine_checkpoint_seconds_count")
        if count == last:
            return
        last = count
        await asyncio.sleep(quiet_s)


async def measure(
    ctx: Context, serve: Serve, bare: BareHttp, ids: list[int], seconds: float, profile: bool = False
) -> Phase:
    probe = await Client.open(serve.url)
    spy = Spy(serve.pid, ctx.workdir / f"flat-{len(ids)}.spy") if profile else None
    try:
        before = await histogram(probe, LAG_METRIC)
        with spy or contextlib.nullcontext():
            meter = CpuMeter({"server": serve.pid})
            latency = await open_loop(serve.url, RATE_OPS, seconds, operations(ids), during=meter)
            phase = Phase(running=len(ids), latency=latency, latency_cpu=meter)
            gc_before = await gc_seconds(probe)
            for _ in range(ROUNDS):
                meter = CpuMeter({"server": serve.pid, "redis": ctx.redis_pid, "client": os.getpid()})
                phase.status.append(await closed_loop(serve.url, CONNECTIONS, seconds / 2, reads(ids), during=meter))
                phase.cpu.append(meter)
                phase.bare.append(await closed_loop(bare.url, CONNECTIONS, seconds / 2, reads(ids)))
            gc_after = await gc_seconds(probe)
        phase.gc_s = {g: round(gc_after[g] - gc_before.get(g, 0.0), 4) for g in sorted(gc_after)}
        phase.lag = lag_summary(before, await histogram(probe, LAG_METRIC))
        phase.profile = spy.top() if spy is not None else ""
    finally:
        await probe.close()
    for label, runs in (("procengine", [phase.latency, *phase.status]), ("bare", phase.bare)):
        for r in runs:
            if r.errors or r.ok == 0:
                raise RuntimeError(f"{label} at {len(ids)}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
    return phase


async def run(ctx: Context, profile: bool = False) -> list[Figure]:
    await ctx.flush()
    small, large = ctx.n(1000, 200), ctx.n(50_000, 5000)
    seconds = ctx.seconds(8.0, 3.0)
    with Serve(ctx, "flat", prefix="flat") as serve:
        clients = await pool(serve.url, 16)
        try:
            process_id = await register(clients[0], parked_definition("parked"))
            ids = await start_executions(clients, process_id, small)
            sizes = await answer_sizes(clients[0], process_id)  # one more execution, parked like the others
            await settled(clients[0])
        finally:
            await close_all(clients)
        with BareHttp(ctx, sizes, event_loop="uvloop") as bare:
            low = await measure(ctx, serve, bare, ids, seconds, profile)
            clients = await pool(serve.url, 16)
            try:
                ids += await start_executions(clients, process_id, large - small)
                await settled(clients[0])
            finally:
                await close_all(clients)
            high = await measure(ctx, serve, bare, ids, seconds, profile)
    return figures(low, high, sizes)


def figures(low: Phase, high: Phase, sizes: dict[str, int]) -> list[Figure]:
    out = []
    for verb in ("pause", "resume"):
        value, baseline = high.ms(verb, 99), low.ms(verb, 99)
        out.append(
            Figure(
                name=f"{verb} p99 over HTTP, {high.running:,} running",
                value=value,
                unit="ms",
                baseline=baseline,
                baseline_label=f"the same serve at {low.running:,} running",
                ratio=value / baseline if baseline else None,
                target=f"p99 <= {TARGET_P99_MS:g} ms",
                passed=value <= TARGET_P99_MS,
                notes=(
                    f"{RATE_OPS} pause+resume/s, open loop; p50 {high.ms(verb, 50):.2f} ms at {high.running:,}, "
                    f"{low.ms(verb, 50):.2f} ms at {low.running:,}; max "
                    f"{1000 * max(high.latency.latencies_s.get(verb, [0])):.1f} ms; "
                    f"{sum(1 for x in high.latency.latencies_s.get(verb, []) if x > TARGET_P99_MS / 1000)} of "
                    f"{len(high.latency.latencies_s.get(verb, []))} over {TARGET_P99_MS:g} ms; server CPU per "
                    f"pause+resume {low.cpu_ms_per_operation():.2f} / {high.cpu_ms_per_operation():.2f} ms"
                ),
                details={
                    "p50_ms": [low.ms(verb, 50), high.ms(verb, 50)],
                    "late_starts": high.latency.late_starts,
                    "server_cpu_ms_per_pause_resume": [low.cpu_ms_per_operation(), high.cpu_ms_per_operation()],
                },
            )
        )
    reads_ratio = high.reads_per_s() / low.reads_per_s()
    out.append(
        Figure(
            name=f"status reads/s, {high.running:,} running",
            value=high.reads_per_s(),
            unit="reads/s",
            baseline=low.reads_per_s(),
            baseline_label=f"the same serve at {low.running:,} running",
            ratio=reads_ratio,
            target=f">= {TARGET_READS:g}x the {low.running:,} figure",
            passed=reads_ratio >= TARGET_READS,
            notes=(
                f"{CONNECTIONS} connections, median of {ROUNDS} rounds each (rounds "
                f"{', '.join(f'{r.per_second:,.0f}' for r in low.status)} / "
                f"{', '.join(f'{r.per_second:,.0f}' for r in high.status)}); against the bare app in the same "
                f"rounds {low.share():.2f} at {low.running:,} and {high.share():.2f} at {high.running:,}: "
                f"ratio of ratios {high.share() / low.share():.2f}; server CPU "
                f"{low.cpu[low.median_round()].share.get('server', 0):.2f} / "
                f"{high.cpu[high.median_round()].share.get('server', 0):.2f} cores, "
                f"{low.cpu_us_per_read():.0f} / {high.cpu_us_per_read():.0f} µs per read (rounds {low.rounds_us()} / "
                f"{high.rounds_us()}); garbage collector during the rounds {_gc(low.gc_s)} / {_gc(high.gc_s)}; "
                f"{sizes['status']} B answers"
            ),
            details={
                "profile_top": (
                    f"at {low.running:,} running:\n{low.profile}\n\nat {high.running:,} running:\n{high.profile}"
                    if low.profile
                    else ""
                ),
                "reads_per_s": [[r.per_second for r in low.status], [r.per_second for r in high.status]],
                "bare_reads_per_s": [[r.per_second for r in low.bare], [r.per_second for r in high.bare]],
                "ratio_of_bare_ratios": high.share() / low.share(),
                "server_cpu_us_per_read": [low.cpu_us_per_read(), high.cpu_us_per_read()],
                "server_cpu_us_per_read_rounds": [
                    [low.cpu_us_per_read(i) for i in range(len(low.status))],
                    [high.cpu_us_per_read(i) for i in range(len(high.status))],
                ],
                "gc_pause_s": [low.gc_s, high.gc_s],
            },
        )
    )
    if high.lag:
        out.append(
            Figure(
                name=f"event-loop lag p99, {high.running:,} running",
                value=high.lag["p99_ms"],
                unit="ms",
                baseline=low.lag.get("p99_ms"),
                baseline_label=f"at {low.running:,} running",
                ratio=high.lag["p99_ms"] / low.lag["p99_ms"] if low.lag.get("p99_ms") else None,
                target="(context)",
                passed=None,
                notes=(
                    f"{LAG_METRIC} bucket bounds over each phase's windows: max {high.lag['max_ms']:g} ms at "
                    f"{high.running:,}, {low.lag.get('max_ms', math.nan):g} ms at {low.running:,}"
                ),
                details={"low": low.lag, "high": high.lag},
            )
        )
    return out


def _gc(seconds: dict[str, float]) -> str:
    return " ".join(f"gen{g} {1000 * s:.0f} ms" for g, s in seconds.items() if s) or "none"
