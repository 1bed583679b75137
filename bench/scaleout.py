"""What several nodes and replicated durability cost.

- **Routing.** Two `procengine serve` nodes on one Redis; 500 running executions, all owned by node A (started
  there, parked on a wait-signal, or looping on one). Pause+resume and signals at a fixed rate, sent to A (the
  owner: the baseline) and to B (which forwards each through A's inbox stream and waits for the reply key), in
  alternating windows so that a drift of the machine hits both alike. Figures: p99 via B beside p99 via A.
- **Durability.** The steps benchmark's engine (1,000 executions x 20 set-variable, in this process) with
  `--durability replicated` (every group-commit pipeline ends with `WAIT 1`) against a replica of the run's
  Redis, beside `local` in the same run, alternated.
"""

from __future__ import annotations

import json
from typing import Any

from bench.common import Context, Figure, Serve, parked_definition, percentile, ratio
from bench.latency import operations
from bench.loadgen import Operation, Run, close_all, open_loop, path, pool, register, start_executions
from bench.steps import engine_steps
from procengine.store.embedded import RedisServer

RATE_OPS = 100
RUNNING = 500
SIGNAL = json.dumps({"ok": True}).encode()


def signal_loop_definition(key: str) -> dict[str, Any]:
    """Waits for `go`, counts it, waits again: every signal is delivered and checkpointed."""
    elements = [
        {"key": "wait", "type": "wait-signal", "signal": "go", "into": "got", "next": "bump"},
        {"key": "bump", "type": "set-variable", "set": {"n": "n + 1"}, "next": "again"},
        {"key": "again", "type": "if-condition", "condition": "n < 1000000", "then": "wait", "else": "done"},
        {"key": "done", "type": "end"},
    ]
    return {"key": key, "threads": [{"key": "main", "elements": elements}]}


def _signal(ids: list[int]) -> Any:
    def make(index: int) -> Operation:
        return [("signal", ("POST", path(ids[index % len(ids)], "signals/go"), SIGNAL))]

    return make


def _ms(runs: list[Run], label: str, q: float) -> tuple[float, int]:
    samples = [x for run in runs for x in run.latencies_s.get(label, [])]
    return 1000 * percentile(samples, q), len(samples)


async def routing(ctx: Context) -> list[Figure]:
    await ctx.flush()
    seconds = ctx.seconds(4.0, 1.5)
    rounds = 1 if ctx.quick else 2
    with (
        Serve(ctx, "route-a", prefix="route", pause_grace_ms=100) as a,
        Serve(ctx, "route-b", prefix="route", pause_grace_ms=100) as b,
    ):
        clients = await pool(a.url, 16)
        try:
            parked = await start_executions(clients, await register(clients[0], parked_definition("parked")), RUNNING)
            looping_id = await register(clients[0], signal_loop_definition("looping"))
            looping = await start_executions(clients, looping_id, RUNNING, {"n": 0})
        finally:
            await close_all(clients)
        runs: dict[tuple[str, str], list[Run]] = {}
        for _ in range(rounds):
            for node, url in (("owner", a.url), ("other", b.url)):
                for kind, make in (("pause", operations(parked)), ("signal", _signal(looping))):
                    run = await open_loop(url, RATE_OPS, seconds, make)
                    if run.errors or run.ok == 0:
                        raise RuntimeError(f"routing {node} {kind}: {run.errors} errors: {run.error_samples}")
                    runs.setdefault((node, kind), []).append(run)
    figures = []
    for label, kind in (("pause", "pause"), ("resume", "pause"), ("signal", "signal")):
        other, n = _ms(runs[("other", kind)], label, 99)
        owner, _ = _ms(runs[("owner", kind)], label, 99)
        other_p50, _ = _ms(runs[("other", kind)], label, 50)
        owner_p50, _ = _ms(runs[("owner", kind)], label, 50)
        figures.append(
            Figure(
                name=f"{label} p99 via a node that does not own the execution",
                value=other,
                unit="ms",
                baseline=owner,
                baseline_label="the same request to the owner",
                ratio=ratio(other, owner),
                target="(context: the price of forwarding through Redis)",
                passed=None,
                notes=(
                    f"p50 {other_p50:.2f} ms vs {owner_p50:.2f} ms; 2 nodes, {RUNNING} executions owned by one, "
                    f"{RATE_OPS} ops/s, {n} samples each side"
                ),
            )
        )
    return figures


async def durability(ctx: Context) -> list[Figure]:
    port = int(ctx.redis_url.rsplit(":", 1)[1].split("/")[0])
    replica = RedisServer(ctx.workdir / "replica", extra_args=("--replicaof", "127.0.0.1", str(port)))
    replica.start()
    try:
        executions = ctx.n(1000, 200)
        rounds = 1 if ctx.quick else 2
        results: dict[str, list[dict[str, Any]]] = {"local": [], "replicated": []}
        for _ in range(rounds):
            for mode in ("replicated", "local"):
                await ctx.flush()
                results[mode].append(await engine_steps(ctx, executions, timeout_s=60, durability=mode))
    finally:
        replica.stop()
    replicated = max(r["steady_per_s"] for r in results["replicated"])
    local = max(r["steady_per_s"] for r in results["local"])
    return [
        Figure(
            name="durable steps/s with --durability replicated",
            value=replicated,
            unit="steps/s",
            baseline=local,
            baseline_label="the same with --durability local",
            ratio=ratio(replicated, local),
            target="(context: what WAIT 1 costs)",
            passed=None,
            notes=(
                f"{executions} executions x 20 set-variable, one replica on loopback, best of {rounds} rounds each "
                f"(replicated {', '.join(format(r['steady_per_s'], ',.0f') for r in results['replicated'])}; "
                f"local {', '.join(format(r['steady_per_s'], ',.0f') for r in results['local'])})"
            ),
        )
    ]


async def run(ctx: Context) -> list[Figure]:
    return [*await routing(ctx), *await durability(ctx)]
