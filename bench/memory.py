"""Redis memory per paused execution with 10 variables, and engine RSS in the number of paused executions.

`procengine serve` in its own process, `--passivate-after-ms 200`. Executions of a process that sets 10
variables (ids, amounts, flags, short text) and then waits for a signal are started over HTTP in batches,
waited for until they wait, paused over HTTP, and left to passivate (the engine's own
`procengine_active_actors` gauge back to 0). After each batch (0, 2,500, 5,000, 10,000 paused):

- the serve process's RSS (/proc/PID/status VmRSS) while the batch is live (all its executions running and
  waiting, then paused) and after passivation. RSS per 10k paused is the slope from the first batch to the
  last: the first batch raises the high-water mark (2,500 live actors; RSS rarely shrinks), and the batches
  are equal, so each later one has as many live actors at its peak. A warm-up of 100 executions (started,
  paused, passivated) runs every code path once before RSS(0) is read;
- at the end, MEMORY USAGE (SAMPLES 0: exact) of each paused execution's five keys (exec hash, :state,
  :threads, :elements, :log), averaged, with the breakdown by key; plus the per-execution share of the
  indexes (the tenant's four execution indexes and the active set: reported beside the figure, not in it)
  and INFO used_memory's growth per execution as a cross-check.

The Redis bytes are measured on two servers in the same run: the run's Redis (the embedded redis-server, 6.2,
with its RSS curve) and a redis-server 7 (`redis-server` on PATH or /usr/bin/redis-server, when it is 7 or
newer), started for this benchmark with the same settings as the embedded one (`RedisServer`: AOF everysec,
`hash-max-ziplist-value 1024`, which Redis 7 reads as `hash-max-listpack-value`), with its own `serve` and a
smaller batch: the bytes of a paused execution do not depend on how many there are. Issue 21's target
(<= 2,000 B) is for Redis 7.

Baseline for Redis memory: the same 10 variables, msgpacked, as the only field of one Redis hash (what the
data costs with no engine around it). Baseline for RSS: what live actors cost, from the first batch (RSS with
2,500 live actors minus RSS(0), per 10k); the target is a paused execution costing under 10% of that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import msgpack

from bench.common import Context, Figure, Serve, parked_definition, variable_values
from bench.latency import metrics_count
from bench.loadgen import Client, close_all, fan_out, path, pool, register, start_executions
from bench.memory_floor import floor_bytes
from procengine.store.embedded import RedisServer
from procengine.store.keys import Keys

VARIABLES = 10
TARGET_BYTES = 2000
"""Issue 21: a paused 10-variable execution takes at most 2,000 B in Redis 7 (MEMORY USAGE of its five keys)."""
TARGET_RSS_SHARE = 0.10
"""'Flat': a paused, passivated execution adds under 10% of what a live actor adds to the RSS (measured in the
same run). Not zero: RSS rarely shrinks. (Before issue 21 the reconciler also read every active execution on each
pass; it now reads none while every node is alive.)"""
WARMUP = 100
KEY_NAMES = ("exec", "state", "elements", "threads", "log", "history")
FIGURE_KEYS = KEY_NAMES[:5]
"""The figure is over the five keys issue 21 measured; the checkpoint history (issue 22) is reported beside it."""


async def _wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"memory: {what} within {timeout_s:.0f}s")
        await asyncio.sleep(0.1)


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    # equal batches, so that every batch has as many live actors at its peak (RSS rarely shrinks: a bigger
    # batch would raise the high-water mark whatever passivation does)
    batch_size = 500 if ctx.quick else 2_500
    checkpoints = [batch_size * i for i in range(5)]  # 0, 2,500, 5,000, 7,500, 10,000
    prefix = "memory"
    keys = Keys(prefix)
    redis = ctx.client()
    rss: dict[int, dict[str, int]] = {}
    ids: list[int] = []
    try:
        with Serve(ctx, "memory", prefix=prefix, passivate_after_ms=200) as serve:
            clients = await pool(serve.url, 16)
            try:
                process_id = await register(clients[0], parked_definition("ten-variables", VARIABLES))
                # warm-up: every code path (start, set-variable, wait, pause, passivate) runs once before RSS(0)
                warm = await start_executions(clients, process_id, WARMUP)
                await _wait_until(lambda: _all_waiting(redis, keys, warm), 60, "warm-up executions reach their wait")
                await fan_out(clients, warm, _pause)
                await _wait_until(lambda: _no_actors(clients[0]), 60, "warm-up actors passivate")
                await asyncio.sleep(0.5)
                rss[0] = {"live": serve.rss_bytes(), "passivated": serve.rss_bytes()}
                used_before = (await redis.info("memory"))["used_memory"]
                for target in checkpoints[1:]:
                    batch_started = time.monotonic()
                    batch = await start_executions(clients, process_id, target - len(ids))
                    await _wait_until(lambda b=batch: _all_waiting(redis, keys, b), 60, "executions reach their wait")
                    live = serve.rss_bytes()  # the whole batch is live (running, waiting) now
                    await fan_out(clients, batch, _pause)
                    ids += batch
                    rss[target] = {"live": max(live, serve.rss_bytes())}
                    await _wait_until(lambda: _no_actors(clients[0]), 60, "paused actors passivate")
                    await asyncio.sleep(0.5)  # let the last releases and the garbage collector settle
                    rss[target]["passivated"] = serve.rss_bytes()
                    if ctx.left() < 2 * (time.monotonic() - batch_started) + 5 and len(rss) >= 3:
                        break  # out of budget for another batch: report what was measured
                statuses = await _statuses(redis, keys, ids)
                if set(statuses) != {"paused"}:
                    raise RuntimeError(f"memory: not all paused: {statuses}")
            finally:
                await close_all(clients)
        bytes_figure = await _measured(redis, keys, ids, process_id, used_before)
    finally:
        await redis.aclose()
    figures = [
        bytes_figure,
        _rss_figure(rss),
    ]
    redis7 = redis7_binary()
    if redis7 is not None:
        figures.insert(1, await _bytes_on(ctx, redis7, ctx.n(300, 100)))
    return figures


def redis7_binary() -> str | None:
    """A redis-server 7 or newer on this machine (PATH, then /usr/bin), or None."""
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate is None or not Path(candidate).is_file():
            continue
        try:
            out = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        version = out.split("v=", 1)[1].split()[0] if "v=" in out else "0"
        if int(version.split(".")[0]) >= 7:
            return candidate
    return None


async def _bytes_on(ctx: Context, executable: str, count: int) -> Figure:
    """The bytes of `count` paused executions on a redis-server of its own (`executable`), measured as on the run's."""
    prefix = "memory"
    keys = Keys(prefix)
    with RedisServer(ctx.workdir / "memory-redis7", executable=executable) as server:
        own = dataclasses.replace(ctx, redis_url=server.url, redis_pid=server.pid or 0)
        redis = own.client()
        try:
            with Serve(own, "memory-redis7", prefix=prefix, passivate_after_ms=200) as serve:
                clients = await pool(serve.url, 16)
                try:
                    process_id = await register(clients[0], parked_definition("ten-variables", VARIABLES))
                    used_before = (await redis.info("memory"))["used_memory"]  # the node's connections, scripts
                    ids = await start_executions(clients, process_id, count)
                    await _wait_until(lambda: _all_waiting(redis, keys, ids), 60, "executions reach their wait")
                    await fan_out(clients, ids, _pause)
                    await _wait_until(lambda: _no_actors(clients[0]), 60, "paused actors passivate")
                    await asyncio.sleep(0.5)
                finally:
                    await close_all(clients)
            statuses = await _statuses(redis, keys, ids)
            if set(statuses) != {"paused"}:
                raise RuntimeError(f"memory (redis 7): not all paused: {statuses}")
            figure = await _measured(redis, keys, ids, process_id, used_before)
            floor = await floor_bytes(redis, keys, ids[len(ids) // 2])
            total = sum(v for k, v in floor.items() if k != "stream_alone")
            figure.notes += (
                f"; the floor under the contract (bench/memory_floor.py: every trim §5 and the seed leave open, "
                f"replayed on one of them): {total:,} B, of which a stream with one 1-byte entry costs "
                f"{floor['stream_alone']:,} B"
            )
            figure.details["floor_under_contract"] = {"total": total, **floor}
            return figure
        finally:
            await redis.aclose()


async def _measured(redis: Any, keys: Keys, ids: list[int], process_id: int, used_before: int) -> Figure:
    """The bytes figure of the paused executions `ids` on this server (MEMORY USAGE per key, the index share, the
    variables alone as the baseline, INFO's growth since `used_before`)."""
    used_after = (await redis.info("memory"))["used_memory"]
    per_key = await _memory_usage(redis, keys, ids)
    index_bytes = await _index_bytes(redis, keys, process_id)
    baseline = await _baseline_bytes(redis)
    version = (await redis.info("server"))["redis_version"]
    return _bytes_figure(f"Redis {version}", ids, per_key, index_bytes, baseline, used_after - used_before)


async def _pause(client: Client, execution_id: int) -> None:
    status, payload = await client.conn.request("POST", path(execution_id, "pause"))
    if status != 200:
        raise RuntimeError(f"pause {execution_id}: {status} {payload[:200]!r}")


async def _no_actors(client: Client) -> bool:
    return await metrics_count(client, "procengine_active_actors") == 0


async def _all_waiting(redis: Any, keys: Keys, ids: list[int]) -> bool:
    """Every execution has completed its set-variable element and started its wait (its record is there)."""
    async with redis.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.hexists(keys.execution(execution_id).elements, "wait")
        done = await pipe.execute()
    return all(done)


async def _statuses(redis: Any, keys: Keys, ids: list[int]) -> dict[str, int]:
    async with redis.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.hget(keys.execution(execution_id).execution, "status")
        found = await pipe.execute()
    counts: dict[str, int] = {}
    for status in found:
        name = status.decode() if status else "missing"
        counts[name] = counts.get(name, 0) + 1
    return counts


async def _memory_usage(redis: Any, keys: Keys, ids: list[int]) -> dict[str, list[int]]:
    usage: dict[str, list[int]] = {name: [] for name in KEY_NAMES}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for execution_id in chunk:
                for key in keys.execution(execution_id).all():
                    pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
            found = await pipe.execute()
        for i in range(len(chunk)):
            for j, name in enumerate(KEY_NAMES):
                usage[name].append(int(found[len(KEY_NAMES) * i + j] or 0))
    return usage


async def _index_bytes(redis: Any, keys: Keys, process_id: int) -> int:
    """The tenant's four execution indexes (all, by status, by process, by process and status) and the active
    set: every paused execution of the run is in each of them once."""
    tenant = "default"
    indexes = (
        keys.executions(tenant),
        keys.status_index(tenant, "paused"),
        keys.process_index(tenant, process_id),
        keys.process_status_index(tenant, process_id, "paused"),
        keys.active,
    )
    total = 0
    for key in indexes:
        total += int(await redis.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0") or 0)
    return total


async def _baseline_bytes(redis: Any) -> int:
    key = "bench:baseline:variables"
    await redis.hset(key, "variables", msgpack.packb(variable_values(VARIABLES)))
    try:
        return int(await redis.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0"))
    finally:
        await redis.delete(key)


def _bytes_figure(server: str, ids: list[int], per_key: dict[str, list[int]], index_bytes: int, baseline: int,
                  used_growth: int) -> Figure:  # fmt: skip
    n = len(ids)
    mean = {name: sum(values) / n for name, values in per_key.items()}
    per_execution = sum(mean[name] for name in FIGURE_KEYS)
    breakdown = ", ".join(f"{name} {mean[name]:.0f}" for name in FIGURE_KEYS)
    return Figure(
        name=f"Redis memory per paused execution (10 variables), {server}",
        value=per_execution,
        unit="B",
        baseline=baseline,
        baseline_label="the 10 variables msgpacked in one hash",
        ratio=per_execution / baseline,
        target=f"<= {TARGET_BYTES} B",
        passed=per_execution <= TARGET_BYTES,
        notes=(
            f"MEMORY USAGE over {n:,} paused executions, by key: {breakdown}; not counted in it: its checkpoint "
            f"history (issue 22, :history) {mean['history']:.0f} B, "
            f"{index_bytes / n:.0f} B/execution in the indexes (4 tenant indexes + the active set); "
            f"INFO used_memory grew {used_growth / n:.0f} B/execution"
        ),
        details={
            "server": server,
            "by_key_mean_bytes": mean,
            "index_bytes_per_execution": index_bytes / n,
            "used_memory_growth_per_execution": used_growth / n,
            "executions": n,
        },
    )


def _rss_figure(rss: dict[int, dict[str, int]]) -> Figure:
    counts = sorted(rss)
    first, last = counts[1], counts[-1]
    slope = (rss[last]["passivated"] - rss[first]["passivated"]) / (last - first)  # bytes per paused execution
    per_10k = slope * 10_000
    live_per_10k = (rss[first]["live"] - rss[0]["passivated"]) / first * 10_000
    share = per_10k / live_per_10k if live_per_10k > 0 else None
    mib = 1024 * 1024
    curve = ", ".join(f"{c:,}: {rss[c]['passivated'] / mib:.1f}" for c in counts)
    live = ", ".join(f"{c:,}: {rss[c]['live'] / mib:.1f}" for c in counts[1:])
    return Figure(
        name="engine RSS growth per 10k paused executions",
        value=per_10k / mib,
        unit="MiB",
        baseline=live_per_10k / mib,
        baseline_label="RSS growth per 10k live actors (1st batch)",
        ratio=share,
        target=f"flat: < {TARGET_RSS_SHARE:.0%} of live actors'",
        passed=share is not None and share < TARGET_RSS_SHARE,
        notes=(
            f"slope {first:,}->{last:,} paused = {slope:.0f} B each, a live actor ~{live_per_10k / 10_000:,.0f} B; "
            f"RSS MiB after passivation {curve}; with the batch live {live}"
        ),
        details={"rss_bytes": {str(k): v for k, v in rss.items()}, "slope_bytes_per_execution": slope},
    )
