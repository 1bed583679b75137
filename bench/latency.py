"""Pause and resume latency over HTTP, p50 and p99, with 1,000 executions running, vs a bare aiohttp JSON
endpoint at the same request rate.

procengine: `procengine serve` in its own process; 1,000 running executions (live actors, each parked on a
wait-signal); the load generator (this process) pauses and then resumes one of them, round robin, at a
fixed rate of operations (open loop: an operation starts on schedule whatever the answers do; latency runs
from the scheduled time for the pause and from the pause's answer for the resume). Pause answers once the
paused snapshot is durable in Redis, resume once the running one is.

Baseline: the bare aiohttp app (bench/baselines.py) answering the same paths with bodies of the same size,
driven by the same loop at the same rate.

Context row: the same with 1,000 executions that keep working (each loops delay 2 s -> set-variable ->
if-condition, about 2,000 element checkpoints/s in the background).
"""

from __future__ import annotations

from typing import Any

from bench.baselines import BareHttp
from bench.common import Context, Figure, Serve, parked_definition, percentile, ratio, ticking_definition
from bench.loadgen import Client, Operation, Run, close_all, open_loop, path, pool, register, start_executions

TARGET_P99_MS = 10.0
RATE_OPS = 100  # operations per second; each is a pause and a resume: 200 requests/s


def operations(ids: list[int]) -> Any:
    def make(index: int) -> Operation:
        execution = ids[index % len(ids)]
        return [
            ("pause", ("POST", path(execution, "pause"), None)),
            ("resume", ("POST", path(execution, "resume"), None)),
        ]

    return make


async def answer_sizes(client: Client, process_id: int) -> dict[str, int]:
    """The size of procengine's pause, resume and status answers (for the bare app's fixed bodies)."""
    [probe] = await start_executions([client], process_id, 1)
    sizes = {}
    for verb, method in (("pause", "POST"), ("resume", "POST"), ("status", "GET")):
        status, payload = await client.conn.request(method, path(probe, verb))
        if status != 200:
            raise RuntimeError(f"probe {verb}: {status} {payload[:200]!r}")
        sizes[verb] = len(payload)
    return sizes


async def metrics_count(client: Client, name: str) -> float:
    _, payload = await client.conn.request("GET", "/metrics")
    total = 0.0
    for line in payload.decode().splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def engine_run(ctx: Context, definition: dict[str, Any], running: int, seconds: float, name: str,
                     variables: dict[str, Any] | None = None) -> tuple[Run, dict[str, int], float]:  # fmt: skip
    """Start `running` executions in a fresh serve, then pause/resume them at RATE_OPS; returns the run, the
    answer sizes and the background element checkpoints per second during the run."""
    with Serve(ctx, name, prefix=name, pause_grace_ms=100) as serve:
        clients = await pool(serve.url, 16)
        try:
            process_id = await register(clients[0], definition)
            ids = await start_executions(clients, process_id, running, variables)
            sizes = await answer_sizes(clients[0], process_id)
            before = await metrics_count(clients[0], "procengine_element_duration_seconds_count")
            run = await open_loop(serve.url, RATE_OPS, seconds, operations(ids))
            after = await metrics_count(clients[0], "procengine_element_duration_seconds_count")
        finally:
            await close_all(clients)
    return run, sizes, (after - before) / (seconds + 1.0)


def _ms(run: Run, label: str, q: float) -> float:
    return 1000 * percentile(run.latencies_s.get(label, []), q)


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    running = ctx.n(1000, 200)
    seconds = ctx.seconds(10.0, 3.0)
    parked, sizes, _ = await engine_run(ctx, parked_definition("parked"), running, seconds, "latency")
    with BareHttp(ctx, sizes, event_loop="uvloop") as bare:
        base = await open_loop(bare.url, RATE_OPS, seconds, operations(list(range(1, running + 1))))
    busy: Run | None = None
    background = 0.0
    if ctx.left() > seconds + 12:
        await ctx.flush()
        busy, _, background = await engine_run(
            ctx, ticking_definition("ticking", 2000), running, seconds, "latency-busy", {"counter": 0}
        )
    for label, r in (("procengine", parked), ("bare", base), ("procengine busy", busy)):
        if r is not None and (r.errors or r.ok == 0):
            raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")

    figures = []
    conditions = f"{running} running (parked), {RATE_OPS} pause+resume/s, {parked.ok // 2} of each"
    for verb in ("pause", "resume"):
        for q in (50, 99):
            value, baseline = _ms(parked, verb, q), _ms(base, verb, q)
            is_target = q == 99
            figures.append(
                Figure(
                    name=f"{verb} latency p{q} over HTTP",
                    value=value,
                    unit="ms",
                    baseline=baseline,
                    baseline_label=f"bare aiohttp POST, same rate, {sizes[verb]} B body",
                    ratio=ratio(value, baseline),
                    target=f"p99 < {TARGET_P99_MS:g} ms" if is_target else "(context)",
                    passed=value < TARGET_P99_MS if is_target else None,
                    notes=conditions
                    if (verb, q) == ("pause", 50)
                    else (
                        f"max {1000 * max(parked.latencies_s.get(verb, [0])):.1f} ms, "
                        f"{sum(1 for x in parked.latencies_s.get(verb, []) if x > 0.005)} of "
                        f"{len(parked.latencies_s.get(verb, []))} over 5 ms"
                        if is_target
                        else ""
                    ),
                    details={
                        "samples": len(parked.latencies_s.get(verb, [])),
                        "late_starts": parked.late_starts,
                        "max_ms": 1000 * max(parked.latencies_s.get(verb, [0])),
                        "baseline_max_ms": 1000 * max(base.latencies_s.get(verb, [0])),
                    },
                )
            )
    if busy is not None:
        for verb in ("pause", "resume"):
            value, baseline = _ms(busy, verb, 99), _ms(base, verb, 99)
            figures.append(
                Figure(
                    name=f"{verb} latency p99, executions busy",
                    value=value,
                    unit="ms",
                    baseline=baseline,
                    baseline_label="bare aiohttp POST, same rate",
                    ratio=ratio(value, baseline),
                    target="(context)",
                    passed=None,
                    notes=(
                        f"{running} running, each looping delay 2 s/set-variable/if: "
                        f"{background:,.0f} element checkpoints/s beside the {RATE_OPS} pause+resume/s; "
                        f"p50 {_ms(busy, verb, 50):.2f} ms"
                    ),
                    details={"background_steps_per_s": background, "p50_ms": _ms(busy, verb, 50)},
                )
            )
    return figures
