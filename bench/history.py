"""The checkpoint history (issue 22): what a kept checkpoint costs Redis, what keeping them costs the steps, and
how fast a rewind answers.

- bytes per kept checkpoint: `procengine serve` with the default history (50 checkpoints, 256 KiB), executions of
  the memory bench's process (10 variables set, then a wait for a signal) started, paused and left to passivate
  over HTTP; MEMORY USAGE (SAMPLES 0) of each one's `:history` list over its length. Baseline: its `:state` hash
  (the one checkpoint the execution holds without a history). Target (issue 22): <= 1 KB.
- steps/s with the history on / off: the steps bench's 1,000 x 20 set-variable run (bench/steps.py, in this
  process), rounds alternating on and off; the figure is the median on over the median off. Target >= 0.9.
- rewind p99 over HTTP: each of those paused executions rewound to its first kept checkpoint, from 4 connections
  (closed loop). Baseline: the same executions' variables edited (`PATCH …/variables`), the nearest fenced write
  of a paused execution, in the same run. Target (issue 22): p99 <= 10 ms.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.common import Context, Figure, Serve, parked_definition, percentile, ratio
from bench.loadgen import Client, close_all, fan_out, path, pool, register, start_executions
from bench.memory import VARIABLES, _all_waiting, _no_actors, _pause, _wait_until
from bench.steps import engine_steps
from procengine.store.keys import Keys

BYTES_TARGET = 1000
STEPS_TARGET = 0.9
REWIND_P99_TARGET_MS = 10.0
PREFIX = "history"


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    count = ctx.n(500, 100)
    keys = Keys(PREFIX)
    redis = ctx.client()
    try:
        with Serve(ctx, "history", prefix=PREFIX, passivate_after_ms=200) as serve:
            clients = await pool(serve.url, 4)
            try:
                process_id = await register(clients[0], parked_definition("ten-variables", VARIABLES))
                ids = await start_executions(clients, process_id, count)
                await _wait_until(lambda: _all_waiting(redis, keys, ids), 60, "executions reach their wait")
                await fan_out(clients, ids, _pause)
                await _wait_until(lambda: _no_actors(clients[0]), 60, "paused actors passivate")
                per_checkpoint, state_bytes, kept = await _bytes(redis, keys, ids)
                rewinds, edits = await _rewinds_and_edits(clients, ids)
            finally:
                await close_all(clients)
    finally:
        await redis.aclose()
    figures = [
        Figure(
            name="Redis bytes per kept checkpoint (10-variable execution)",
            value=per_checkpoint,
            unit="B",
            baseline=state_bytes,
            baseline_label="its :state hash (the one checkpoint it holds without a history)",
            ratio=ratio(per_checkpoint, state_bytes),
            target=f"<= {BYTES_TARGET} B",
            passed=per_checkpoint <= BYTES_TARGET,
            notes=f"MEMORY USAGE of :history over its length, {count} paused executions, {kept:.1f} kept each",
        )
    ]
    rewind_p99, edit_p99 = percentile(rewinds, 99), percentile(edits, 99)
    figures.append(
        Figure(
            name="rewind p99 over HTTP (paused, to the first kept checkpoint)",
            value=rewind_p99,
            unit="ms",
            baseline=edit_p99,
            baseline_label="PATCH …/variables of the same executions, same run",
            ratio=ratio(rewind_p99, edit_p99),
            target=f"<= {REWIND_P99_TARGET_MS:g} ms",
            passed=rewind_p99 <= REWIND_P99_TARGET_MS,
            notes=f"{len(rewinds)} rewinds, 4 connections, closed loop; p50 {percentile(rewinds, 50):.2f} ms",
        )
    )
    figures.append(await _steps_on_off(ctx))
    return figures


async def _bytes(redis: Any, keys: Keys, ids: list[int]) -> tuple[float, float, float]:
    async with redis.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            names = keys.execution(execution_id)
            pipe.execute_command("MEMORY", "USAGE", names.history, "SAMPLES", "0")
            pipe.llen(names.history)
            pipe.execute_command("MEMORY", "USAGE", names.state, "SAMPLES", "0")
        found = await pipe.execute()
    history = [int(found[i] or 0) for i in range(0, len(found), 3)]
    lengths = [int(found[i + 1] or 0) for i in range(0, len(found), 3)]
    states = [int(found[i + 2] or 0) for i in range(0, len(found), 3)]
    if not all(lengths):
        raise RuntimeError("history: an execution kept no checkpoint")
    per = statistics.mean(h / n for h, n in zip(history, lengths, strict=True))
    return per, statistics.mean(states), statistics.mean(lengths)


async def _rewinds_and_edits(clients: list[Client], ids: list[int]) -> tuple[list[float], list[float]]:
    """Per execution, a variables edit then a rewind to its first kept checkpoint: latencies in ms."""
    edits: list[float] = []
    rewinds: list[float] = []

    async def one(client: Client, execution_id: int) -> None:
        status, payload = await client.conn.request("GET", path(execution_id, "checkpoints?limit=500"))
        if status != 200:
            raise RuntimeError(f"checkpoints {execution_id}: {status} {payload[:200]!r}")
        first = json.loads(payload)["data"]["items"][-1]["seq"]
        started = time.perf_counter()
        status, payload = await client.conn.request(
            "PATCH", path(execution_id, "variables"), json.dumps({"note": "edited"}).encode()
        )
        edits.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"edit {execution_id}: {status} {payload[:200]!r}")
        started = time.perf_counter()
        body = json.dumps({"checkpoint": first, "reason": "bench"}).encode()
        status, payload = await client.conn.request("POST", path(execution_id, "rewind"), body)
        rewinds.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"rewind {execution_id}: {status} {payload[:200]!r}")

    await fan_out(clients, ids, one)
    return rewinds, edits


async def _steps_on_off(ctx: Context) -> Figure:
    executions = ctx.n(1000, 200)
    rounds = 2 if ctx.quick else 3
    on: list[float] = []
    off: list[float] = []
    for _ in range(rounds):
        for history, into in ((True, on), (False, off)):
            await ctx.flush()
            update = {} if history else {"history_checkpoints": 0}
            result = await engine_steps(ctx, executions, timeout_s=120, settings_update=update)
            into.append(result["end_to_end_per_s"])  # starts included (bench/steps.py: why not the window)
    with_history, without = statistics.median(on), statistics.median(off)
    share = ratio(with_history, without)
    return Figure(
        name="durable element steps/s with the checkpoint history on",
        value=with_history,
        unit="steps/s",
        baseline=without,
        baseline_label="the same run with --history-checkpoints 0",
        ratio=share,
        target=f">= {STEPS_TARGET:g} of off",
        passed=share is not None and share >= STEPS_TARGET,
        notes=(
            f"{executions} x 20 set-variable (bench/steps.py), rounds on "
            f"{', '.join(format(v, ',.0f') for v in on)}, off {', '.join(format(v, ',.0f') for v in off)}"
        ),
    )
