"""Starts: many at once through the batch route, and 100 short executions through the client beside SpiffWorkflow.

(a) starts/s of one `procengine serve` through `POST .../executions/processes/batch` (2 connections, batches of
1,000 back to back for 2 s a round) beside single starts (`POST .../executions/processes`, 16 connections, closed
loop), in alternating rounds on the same node; the executions park on a wait-signal, so a start is what is
measured. The tenant's start limit (`--max-starts-per-second`, 5,000 by default) is lifted for the run: the figure
is the engine's, not the limit's.

The engine before issue 21's starts work (BEFORE, `git archive` into the run's work dir: Python's collector
thresholds, actors freed only by full collections, two writes per parked start) runs the same batch rounds on
its own node beside it, alternating, so the notes give the gain in the same run (`STARTS_BASELINE=0` skips it).

(b) 100 executions of a chain of 20 `echo` tasks, started with `AsyncClient.start_many` and waited for on the
client's status-event stream until the 100th has completed, beside a hand loop of SpiffWorkflow (the optional
`bench` extra) that runs the same 100 x 20 in this process with one Redis SET per step to the same redis-server:
the step's durable state, the workflow serialized by SpiffWorkflow's JSONSerializer (what it needs to go on
after a crash), as procengine checkpoints its stack and memory after each element. The notes add the same loop
SETting only the task's data (not enough to resume). Rounds alternate; the figure is the median round.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Context, Figure, Serve, parked_definition
from bench.loadgen import BASE, Client, close_all, closed_loop, pool, register
from procengine.client import AsyncClient

PREFIX = "starts"
BATCH = 1_000
BATCH_CONNECTIONS = 2
SINGLE_CONNECTIONS = 16
START_TARGET = 5_000.0  # starts/s through the batch route
EXECUTIONS = 100
STEPS = 20
SERVE_ENV = {"PROCENGINE_MAX_STARTS_PER_SECOND": "0"}
BEFORE = "93bff92"
"""main before issue 21's starts work (the collector's thresholds, cycle-free actors, a parked start in one write)."""


async def run(ctx: Context) -> list[Figure]:
    figures = [await _starts(ctx)]
    chain = await _chain(ctx)
    if chain is not None:
        figures.append(chain)
    return figures


# --- (a) starts/s ----------------------------------------------------------------------------------------


async def _starts(ctx: Context) -> Figure:
    await ctx.flush()
    rounds = ctx.n(3, 2)
    window = ctx.seconds(2.0, 1.0)  # per round and side; a batch round sends at least one batch per connection
    batch_rates: list[float] = []
    single_rates: list[float] = []
    before_rates: list[float] = []
    with contextlib.ExitStack() as serves:
        serve = serves.enter_context(Serve(ctx, "starts", prefix=PREFIX, env=SERVE_ENV))
        clients = await pool(serve.url, BATCH_CONNECTIONS)
        old: list[Client] = []
        try:
            process_id = await register(clients[0], parked_definition("parked-start"))
            await _batches(clients, process_id, 0.0)  # warm: the definition read and compiled, connections open
            sides = ["batch", "single"]
            if os.environ.get("STARTS_BASELINE", "1") != "0":
                before = Serve(ctx, "starts-before", prefix=PREFIX + "-before", env=SERVE_ENV)
                before.cwd = _before_tree(ctx)
                before.env["PYTHONPATH"] = str(before.cwd)
                serves.enter_context(before)
                old = await pool(before.url, BATCH_CONNECTIONS)
                old_process = await register(old[0], parked_definition("parked-start"))
                await _batches(old, old_process, 0.0)
                sides.append("before")
            for i in range(rounds):
                for side in sides if i % 2 == 0 else sides[::-1]:
                    if side == "batch":
                        batch_rates.append(await _batches(clients, process_id, window))
                    elif side == "before":
                        before_rates.append(await _batches(old, old_process, window))
                    else:
                        single_rates.append(await _singles(serve.url, process_id, window))
        finally:
            await close_all(clients + old)
    batch, single = statistics.median(batch_rates), statistics.median(single_rates)
    versus = ""
    if before_rates:
        earlier = statistics.median(before_rates)
        versus = (
            f"; the engine before the starts work ({BEFORE}), batch route, own node: {earlier:,.0f} starts/s "
            f"(rounds {' / '.join(f'{r:,.0f}' for r in before_rates)}), ratio {batch / earlier:.2f}"
        )
    return Figure(
        name="starts/s through the batch route, one node",
        value=round(batch),
        unit="starts/s",
        baseline=round(single),
        baseline_label=f"single starts, {SINGLE_CONNECTIONS} connections, same node and run",
        ratio=batch / single if single else None,
        target=f">= {START_TARGET:,.0f} starts/s",
        passed=batch >= START_TARGET,
        notes=(
            f"batches of {BATCH:,}, {BATCH_CONNECTIONS} connections; rounds batch "
            f"{' / '.join(f'{r:,.0f}' for r in batch_rates)}, single {' / '.join(f'{r:,.0f}' for r in single_rates)}"
            f"{versus}"
        ),
        details={
            "batch_rounds": batch_rates,
            "single_rounds": single_rates,
            "before_rounds": before_rates,
            "before": BEFORE,
            "batch": BATCH,
        },
    )


def _before_tree(ctx: Context) -> Path:
    """The engine as of BEFORE, unpacked once into the run's work dir."""
    tree = ctx.workdir / f"engine-{BEFORE}"
    if not tree.exists():
        archive = ctx.workdir / f"engine-{BEFORE}.tar"
        subprocess.run(["git", "-C", str(REPO), "archive", "--output", str(archive), BEFORE, "procengine"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
    return tree


async def _batches(clients: list[Client], process_id: int, seconds: float) -> float:
    """Starts/s of batches of BATCH sent back to back on each client until `seconds` have passed (one at least)."""
    items = [{"processID": process_id, "variables": {"i": i}} for i in range(BATCH)]
    body = {"items": items}
    began = time.perf_counter()

    async def send(client: Client) -> int:
        started = 0
        while not started or time.perf_counter() - began < seconds:
            answer = await client.call("POST", BASE + "/executions/processes/batch", body)
            if answer["failed"]:
                raise RuntimeError(f"batch start: {answer['failed']} failed: {answer['items'][0]}")
            started += answer["started"]
        return started

    counts = await asyncio.gather(*(send(client) for client in clients))
    return sum(counts) / (time.perf_counter() - began)


async def _singles(url: str, process_id: int, seconds: float) -> float:
    body = json.dumps({"processID": process_id, "variables": {"i": 0}}).encode()
    result = await closed_loop(
        url, SINGLE_CONNECTIONS, seconds, lambda _: ("POST", BASE + "/executions/processes", body), warmup_s=0.5
    )
    if result.errors:
        raise RuntimeError(f"single starts: {result.errors} errors: {result.error_samples}")
    return result.per_second


# --- (b) 100 x 20 task steps beside SpiffWorkflow -------------------------------------------------------


def _task_chain(key: str) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    for i in range(1, STEPS + 1):
        element: dict[str, Any] = {"key": f"t{i:02d}", "type": "task", "handler": "echo", "input": {"n": "n"}}
        element["output"] = "out"
        if i < STEPS:
            element["next"] = f"t{i + 1:02d}"
        elements.append(element)
    return {"key": key, "name": f"{STEPS} echo tasks", "threads": [{"key": "main", "elements": elements}]}


async def _chain(ctx: Context) -> Figure | None:
    if importlib.util.find_spec("SpiffWorkflow") is None:
        print(
            "\n  starts: skipped 100 x 20 beside SpiffWorkflow: it is not installed "
            "(`make bench` installs it, or: uv sync --extra bench)",
            flush=True,
        )
        return None
    await ctx.flush()
    rounds = ctx.n(5, 2)
    ours: list[float] = []
    spiff: list[float] = []
    spiff_data_only: list[float] = []
    split: list[dict[str, float]] = []
    with Serve(ctx, "starts-chain", prefix=PREFIX, env=SERVE_ENV) as serve:
        async with AsyncClient(serve.url) as client:
            await client.register(_task_chain("echo-chain"))
            await _through_client(client, 10)  # warm
            for i in range(rounds):
                for side in ("ours", "spiff") if i % 2 == 0 else ("spiff", "ours"):
                    if side == "ours":
                        ours.append(await _through_client(client, EXECUTIONS))
                    else:
                        rate, parts = await asyncio.to_thread(_spiff_loop, ctx.redis_url, True)
                        spiff.append(rate)
                        split.append(parts)
            spiff_data_only.append((await asyncio.to_thread(_spiff_loop, ctx.redis_url, False))[0])
    value, base = statistics.median(ours), statistics.median(spiff)
    ratio = value / base
    return Figure(
        name=f"{EXECUTIONS} x {STEPS} task steps through the client",
        value=round(value),
        unit="steps/s",
        baseline=round(base),
        baseline_label="SpiffWorkflow hand loop, one Redis SET per step (the serialized workflow)",
        ratio=ratio,
        target="> 1 (ahead of SpiffWorkflow)",
        passed=ratio > 1,
        notes=(
            f"start_many, then the status stream until the last completed; rounds ours "
            f"{' / '.join(f'{r:,.0f}' for r in ours)}, SpiffWorkflow {' / '.join(f'{r:,.0f}' for r in spiff)}; "
            f"SpiffWorkflow SETting the task data only (not resumable): {spiff_data_only[0]:,.0f} steps/s "
            f"(ratio {value / spiff_data_only[0]:.2f}); its time: {_shares(split)}"
        ),
        details={"ours": ours, "spiff": spiff, "spiff_data_only": spiff_data_only, "spiff_split_s": split},
    )


async def _through_client(client: AsyncClient, count: int) -> float:
    """Steps/s of `count` executions of the chain: from start_many until the status stream has shown the last of
    them completed."""
    async with client.status_events() as changes:
        began = time.perf_counter()
        answer = await client.start_many(({"variables": {"n": i}} for i in range(count)), process_key="echo-chain")
        if answer.failed:
            raise RuntimeError(f"start_many: {answer.failed} failed: {answer.items[0]}")
        waiting = {item.executionID for item in answer.items}
        async with asyncio.timeout(120):
            async for change in changes:
                if change.status == "completed":
                    waiting.discard(change.executionID)
                    if not waiting:
                        break
                elif change.status == "failed":
                    raise RuntimeError(f"execution {change.executionID} failed")
        return count * STEPS / (time.perf_counter() - began)


def _spiff_loop(redis_url: str, durable: bool) -> tuple[float, dict[str, float]]:
    """SpiffWorkflow: 100 workflows of 20 tasks, one after the other, each task's output in its data as echo's
    is, and after each task one SET (the serialized workflow if `durable`, else the task's data as JSON)."""
    import redis
    from SpiffWorkflow.serializer.json import JSONSerializer
    from SpiffWorkflow.specs.Simple import Simple
    from SpiffWorkflow.specs.WorkflowSpec import WorkflowSpec
    from SpiffWorkflow.util.task import TaskState
    from SpiffWorkflow.workflow import Workflow

    spec = WorkflowSpec("echo-chain", addstart=True)
    previous: Any = spec.start
    for i in range(1, STEPS + 1):
        task_spec = Simple(spec, f"t{i:02d}")
        previous.connect(task_spec)
        previous = task_spec
    serializer = JSONSerializer()
    client = redis.Redis.from_url(redis_url)
    parts = {"run_s": 0.0, "serialize_s": 0.0, "set_s": 0.0}
    steps = 0
    try:
        began = time.perf_counter()
        for n in range(EXECUTIONS):
            t0 = time.perf_counter()
            workflow = Workflow(spec)
            workflow.data["n"] = n
            while not workflow.is_completed():
                ready = workflow.get_tasks(state=TaskState.READY)
                if not ready:
                    break
                for task in ready:
                    is_step = task.task_spec.name != "Start"
                    if is_step:
                        task.data["out"] = {"n": task.data.get("n", n)}
                    task.run()
                    t1 = time.perf_counter()
                    parts["run_s"] += t1 - t0
                    if is_step:
                        blob = workflow.serialize(serializer) if durable else json.dumps(task.data)
                        t2 = time.perf_counter()
                        client.set(f"spiff:{n}", blob)
                        t0 = time.perf_counter()
                        parts["serialize_s"] += t2 - t1
                        parts["set_s"] += t0 - t2
                        steps += 1
                    else:
                        t0 = t1
        elapsed = time.perf_counter() - began
    finally:
        client.close()
    if steps != EXECUTIONS * STEPS:
        raise RuntimeError(f"SpiffWorkflow ran {steps} steps, not {EXECUTIONS * STEPS}")
    return steps / elapsed, parts


def _shares(split: list[dict[str, float]]) -> str:
    total = {name: sum(part[name] for part in split) for name in ("run_s", "serialize_s", "set_s")}
    whole = sum(total.values()) or 1.0
    return ", ".join(f"{name.removesuffix('_s')} {value / whole:.0%}" for name, value in total.items())
