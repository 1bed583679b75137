"""What two idle nodes cost, with many paused and waiting executions: Redis commands/s and CPU per node.

Two `procengine serve` nodes, A and B, on the run's redis-server (`--passivate-after-ms 500`, and a node TTL of
60 s, so that a node stopped for a window below is not taken for dead). N executions are started on A over
REST (concurrent clients) and paused: their actors passivate (owner ""). Then M more are started and left
waiting on a wait-signal: live actors on A. Nothing is sent after that: the nodes are idle.

- commands/s: the sum of INFO commandstats `calls` over a window, less the bench's own two INFO calls, per
  second; for both nodes together (both running), then each node alone (the other SIGSTOPped for the window;
  a stopped process sends nothing, and its heartbeat outlives the window);
- CPU per node: /proc/<pid>/stat utime + stime over the window with both running, as a share of one core.

Baseline: the same run with the engine before issue 21 (`git archive 66fe1e7 procengine` into the run's work
dir, serve started from there), which read the status and owner of every active execution on every node every
2 s. The engine under test runs first, then the baseline, each from an emptied Redis.

    .venv/bin/python -m bench --only idle                # 100,000 paused + 10,000 waiting
    .venv/bin/python -m bench --only idle --quick        # 2,000 paused + 200 waiting
    IDLE_PAUSED=20000 IDLE_WAITING=2000 .venv/bin/python -m bench --only idle    # another size
    IDLE_BASELINE=0 .venv/bin/python -m bench --only idle   # this tree only (the full size's set-up takes minutes)
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Context, Figure, Serve, cpu_seconds, parked_definition, ratio
from bench.latency import metrics_count
from bench.loadgen import Client, close_all, fan_out, path, pool, register, start_executions

BEFORE = "66fe1e7"
"""The engine before issue 21 (main when the work began): the baseline."""
TARGET_COMMANDS = 100.0
TARGET_CORE = 0.02
NODE_TTL_MS = 60_000
CLIENTS = 64


def before_tree(ctx: Context) -> Path:
    """The engine as of BEFORE, unpacked once into the run's work dir."""
    tree = ctx.workdir / f"engine-{BEFORE}"
    if not tree.exists():
        archive = ctx.workdir / f"engine-{BEFORE}.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "--output", str(archive), BEFORE, "procengine"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
    return tree


async def _commands(redis: Any) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


async def _rate(redis: Any, seconds: float) -> tuple[float, dict[str, float]]:
    """Commands/s sent to Redis over `seconds` (the bench's own INFO calls taken out), and by command."""
    before = await _commands(redis)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    after = await _commands(redis)
    wall = time.perf_counter() - started
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    delta["info"] = delta.get("info", 0) - 1  # the INFO that read `after` counted itself; `before`'s did not
    by_command = {name: round(calls / wall, 1) for name, calls in sorted(delta.items()) if calls > 0}
    return sum(delta.values()) / wall, by_command


async def _pause(client: Client, execution_id: int) -> None:
    status, payload = await client.conn.request("POST", path(execution_id, "pause"))
    if status != 200:
        raise RuntimeError(f"idle: pause {execution_id}: {status} {payload[:200]!r}")


async def _until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"idle: {what} within {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


def _stopped(serve: Serve) -> Any:
    class Stopped:
        def __enter__(self) -> None:
            os.kill(serve.pid, signal.SIGSTOP)

        def __exit__(self, *exc: object) -> None:
            os.kill(serve.pid, signal.SIGCONT)

    return Stopped()


async def measure(ctx: Context, tree: Path, paused: int, waiting: int, window_s: float) -> dict[str, Any]:
    """Set the scene with the engine of `tree` and measure the idle window; the figures of one side."""
    client = ctx.client(socket_timeout=300)
    try:  # 100,000 executions' keys: freed in the background, not within a FLUSHALL the client times out on
        await client.flushall(asynchronous=True)
    finally:
        await client.aclose()
    await ctx.flush()
    prefix = "idle"
    redis = ctx.client()
    nodes: list[Serve] = []
    try:
        for name in ("a", "b"):
            serve = Serve(
                ctx, f"idle-{tree.name}-{name}", prefix=prefix, passivate_after_ms=500, node_ttl_ms=NODE_TTL_MS
            )
            serve.cwd = tree
            serve.env["PYTHONPATH"] = str(tree)
            nodes.append(serve.start())
        node_a, node_b = nodes
        setup_started = time.perf_counter()
        clients = await pool(node_a.url, CLIENTS)
        try:
            process_id = await register(clients[0], parked_definition("idle"))
            done = 0
            while done < paused:  # in batches: at most 20,000 live actors at once before they passivate
                batch = await start_executions(clients, process_id, min(20_000, paused - done))
                await fan_out(clients, batch, _pause)
                done += len(batch)
            await start_executions(clients, process_id, waiting)
            await _until(lambda: _actors(clients[0], waiting), max(60.0, paused / 500), "the paused actors passivate")
        finally:
            await close_all(clients)
        setup_s = time.perf_counter() - setup_started
        await asyncio.sleep(min(3.0, window_s / 2))  # the last releases, and a reconcile pass or two, settle
        pids = {"a": node_a.pid, "b": node_b.pid, "redis": ctx.redis_pid}
        cpu_before, wall_before = {name: cpu_seconds(pid) for name, pid in pids.items()}, time.perf_counter()
        both, by_command = await _rate(redis, window_s)
        wall = time.perf_counter() - wall_before
        cpu = {name: round((cpu_seconds(pid) - cpu_before[name]) / wall, 4) for name, pid in pids.items()}
        with _stopped(node_b):
            only_a, by_command_a = await _rate(redis, window_s / 2)
        with _stopped(node_a):
            only_b, by_command_b = await _rate(redis, window_s / 2)
        info = await redis.info("keyspace")
    finally:
        for serve in nodes:
            serve.kill()
        await redis.aclose()
    return {
        "setup_s": round(setup_s, 1),
        "commands_per_s": round(both, 1),
        "commands_per_s_a": round(only_a, 1),
        "commands_per_s_b": round(only_b, 1),
        "cpu_a": cpu["a"],
        "cpu_b": cpu["b"],
        "cpu_redis": cpu["redis"],
        "by_command": by_command,
        "by_command_a": by_command_a,
        "by_command_b": by_command_b,
        "keyspace": {str(k): v for k, v in info.items()},
    }


async def _actors(client: Client, count: int) -> bool:
    return await metrics_count(client, "procengine_active_actors") <= count


def sizes(ctx: Context) -> tuple[int, int]:
    paused = int(os.environ.get("IDLE_PAUSED", ctx.n(100_000, 2_000)))
    waiting = int(os.environ.get("IDLE_WAITING", ctx.n(10_000, 200)))
    return paused, waiting


async def run(ctx: Context) -> list[Figure]:
    paused, waiting = sizes(ctx)
    window_s = ctx.seconds(20.0, 6.0)
    mine = await measure(ctx, REPO, paused, waiting, window_s)
    said = f" this tree: {mine['commands_per_s']} commands/s, CPU A {mine['cpu_a']} B {mine['cpu_b']};"
    print(said, end="", flush=True)
    if os.environ.get("IDLE_BASELINE", "1") == "0":  # a long size, this tree only (its set-up takes minutes)
        theirs = {k: float("nan") for k in mine if isinstance(mine[k], float | int)} | {"setup_s": "-"}
    else:
        theirs = await measure(ctx, before_tree(ctx), paused, waiting, window_s)
    scene = f"{paused:,} paused (passivated) + {waiting:,} waiting on node A, node B owns nothing"
    worst_cpu = max(mine["cpu_a"], mine["cpu_b"])
    worst_cpu_before = max(theirs["cpu_a"], theirs["cpu_b"])
    worst_node = max(mine["commands_per_s_a"], mine["commands_per_s_b"])
    return [
        Figure(
            name="Redis commands/s sent by two idle nodes",
            value=mine["commands_per_s"],
            unit="cmd/s",
            baseline=theirs["commands_per_s"],
            baseline_label=f"the engine before issue 21 ({BEFORE})",
            ratio=ratio(mine["commands_per_s"], theirs["commands_per_s"]),
            target=f"<= {TARGET_COMMANDS:.0f} per node",
            passed=worst_node <= TARGET_COMMANDS,
            notes=(
                f"{scene}; per node alone: A {mine['commands_per_s_a']}, B {mine['commands_per_s_b']} "
                f"(before: A {theirs['commands_per_s_a']}, B {theirs['commands_per_s_b']}); "
                f"{window_s:.0f} s window, INFO commandstats"
            ),
            details={"mine": mine, "before": theirs},
        ),
        Figure(
            name="CPU of the busier idle node",
            value=worst_cpu,
            unit="core",
            baseline=worst_cpu_before,
            baseline_label=f"the engine before issue 21 ({BEFORE})",
            ratio=ratio(worst_cpu, worst_cpu_before),
            target=f"<= {TARGET_CORE} core each",
            passed=worst_cpu <= TARGET_CORE,
            notes=(
                f"{scene}; A {mine['cpu_a']}, B {mine['cpu_b']}, Redis {mine['cpu_redis']} "
                f"(before: A {theirs['cpu_a']}, B {theirs['cpu_b']}, Redis {theirs['cpu_redis']}); "
                f"/proc/<pid>/stat over the {window_s:.0f} s window; set-up {mine['setup_s']} s / "
                f"{theirs['setup_s']} s"
            ),
        ),
    ]
