"""Repair (issue 20): retry and edit-variables latency over HTTP with 1,000 executions running, and the steps
benchmark of this tree against the engine before issue 20.

Latency. procengine: `procengine serve` in its own process; 1,000 running executions (live actors parked on a
wait-signal) and, beside them, a pool of failed executions (a definition whose first element fails, no retries:
`fix >= 0` with no `fix`) and a pool of paused ones. The load generator (this process) retries one failed
execution after another with the merge patch that repairs it (`{"variables": {"fix": 1}}`: each then runs to its
end in the background), at a fixed rate (open loop, latency from the scheduled time, as bench/latency.py); then
edits the paused ones' variables round robin (`PATCH …/variables`, a value that changes each time, so each is a
write) at the same rate. A retry answers once its one fenced write is durable (it activates the failed
execution's actor first: a failed execution has none); an edit likewise. Baseline: the bare aiohttp app
(bench/baselines.py) answering POST …/retry and PATCH …/variables with bodies of procengine's sizes, after
parsing the JSON request, at the same rate.

Steps/s before and after. The repair work changed commit.lua (an expiry of -1 is PERSIST, for a write from a final
status) and added execution-hash fields. The steps benchmark's engine (bench/steps.py `engine_steps`, 1,000
executions x 20 set-variables) is run in a subprocess from this tree and from a copy of the engine before issue 20
(`git archive f70e99e procengine bench` into the run's work dir), in alternating rounds on the same Redis (emptied
before each round); the figure is the median steady rate of this tree over the median of the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from bench import latency
from bench.baselines import BareHttp
from bench.common import REPO, Context, Figure, Serve, parked_definition, percentile, ratio
from bench.loadgen import (
    Client,
    Operation,
    Run,
    close_all,
    fan_out,
    open_loop,
    path,
    pool,
    register,
    start_executions,
)

TARGET_P99_MS = 10.0
RATE_OPS = 100  # retries (then edits) per second
BEFORE = "f70e99e"
"""The engine before issue 20's repair work (the commit h20 branched the repair work from)."""
TARGET_STEPS_RATIO = 0.95
RETRY_BODY = json.dumps({"variables": {"fix": 1}, "reason": "bench"}).encode()

FAILS = {
    "key": "repair-fails",
    "name": "fails at once until `fix` is set",
    "threads": [
        {
            "key": "main",
            "elements": [
                {"key": "check", "type": "set-variable", "set": {"ok": "fix >= 0"}, "next": "done"},
                {"key": "done", "type": "end"},
            ],
        }
    ],
}


def retries(failed: list[int]) -> Any:
    def make(index: int) -> Operation:
        return [("retry", ("POST", path(failed[index % len(failed)], "retry"), RETRY_BODY))]

    return make


def edits(paused: list[int]) -> Any:
    def make(index: int) -> Operation:
        body = json.dumps({"edited": index}).encode()  # a new value each time: every edit is a write
        return [("edit", ("PATCH", path(paused[index % len(paused)], "variables"), body))]

    return make


async def _statuses(clients: list[Client], ids: list[int], status: str, within_s: float) -> None:
    """Wait until every one of `ids` has `status` (each read once per pass)."""
    deadline = time.monotonic() + within_s
    waiting = list(ids)
    while waiting:
        found = await fan_out(clients, waiting, lambda client, e: client.call("GET", path(e, "status")))
        waiting = [e for e, doc in zip(waiting, found, strict=True) if doc["status"] != status]
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} executions not {status} after {within_s:.0f}s")
        if waiting:
            await asyncio.sleep(0.2)


async def engine_latency(ctx: Context, running: int, paused_n: int, seconds: float) -> dict[str, Any]:
    """1,000 parked, a pool of failed and of paused; retries, then edits, each at RATE_OPS for `seconds`."""
    failed_n = int(RATE_OPS * (seconds + 1.0)) + 50  # each is retried once (the patch repairs it: it completes)
    with Serve(ctx, "repair", prefix="repair", pause_grace_ms=100) as serve:
        clients = await pool(serve.url, 16)
        try:
            parked = await register(clients[0], parked_definition("parked"))
            fails = await register(clients[0], FAILS)
            running_ids = await start_executions(clients, parked, running)
            paused = await start_executions(clients, parked, paused_n)
            for execution in paused:
                await clients[0].call("POST", path(execution, "pause"))
            failed = await start_executions(clients, fails, failed_n + 1)
            await _statuses(clients, failed, "failed", within_s=60)
            probe, failed = failed[0], failed[1:]
            status, retried = await clients[0].conn.request("POST", path(probe, "retry"), RETRY_BODY)
            if status != 200:
                raise RuntimeError(f"probe retry: {status} {retried[:200]!r}")
            status, edited = await clients[0].conn.request("PATCH", path(paused[0], "variables"), b'{"edited": -1}')
            if status != 200:
                raise RuntimeError(f"probe edit: {status} {edited[:200]!r}")
            retry_run = await open_loop(serve.url, RATE_OPS, seconds, retries(failed))
            edit_run = await open_loop(serve.url, RATE_OPS, seconds, edits(paused))
            # the latency benchmark's pause+resume on the same serve, same rate: what this machine allowed just now
            control_run = await open_loop(serve.url, RATE_OPS, seconds, latency.operations(running_ids))
            await _statuses(clients, failed[: retry_run.ok], "completed", within_s=30)  # each retry took effect
        finally:
            await close_all(clients)
    return {
        "retry": retry_run,
        "edit": edit_run,
        "pause": control_run,
        "sizes": {"retry": len(retried), "edit": len(edited)},
        "failed": failed_n,
    }


def _ms(run: Run, label: str, q: float) -> float:
    return 1000 * percentile(run.latencies_s.get(label, []), q)


async def latency_figures(ctx: Context) -> list[Figure]:
    """Rounds of (procengine, then the bare app), each on a fresh serve and an emptied Redis; each percentile is
    the median of the rounds' (the machine is shared: one round can land on someone else's burst)."""
    running = ctx.n(1000, 200)
    paused_n = ctx.n(200, 50)
    seconds = ctx.seconds(6.0, 3.0)
    rounds = ctx.n(3, 1)
    mine: list[dict[str, Any]] = []
    theirs: list[dict[str, Run]] = []
    for _ in range(rounds):
        await ctx.flush()
        found = await engine_latency(ctx, running, paused_n, seconds)
        sizes = found["sizes"]
        with BareHttp(ctx, {"retry": sizes["retry"], "edit": sizes["edit"]}, event_loop="uvloop") as bare:
            ids = list(range(1, 1001))
            base = {
                "retry": await open_loop(bare.url, RATE_OPS, seconds, retries(ids)),
                "edit": await open_loop(bare.url, RATE_OPS, seconds, edits(ids)),
            }
        for label, r in (*found.items(), *(("bare " + k, v) for k, v in base.items())):
            if isinstance(r, Run) and (r.errors or r.ok == 0):
                raise RuntimeError(f"{label}: {r.errors} errors, {r.ok} ok: {r.error_samples}")
        mine.append(found)
        theirs.append(base)
    sizes = mine[0]["sizes"]
    figures = []
    what = {
        "retry": f"{mine[0]['failed']} failed executions, each retried once with the patch that repairs it",
        "edit": f"{paused_n} paused executions, edited round robin (a new value each time)",
    }
    for verb in ("retry", "edit"):
        samples = [x for found in mine for x in found[verb].latencies_s.get(verb, [])]
        for q in (50, 99):
            each = [_ms(found[verb], verb, q) for found in mine]
            value = statistics.median(each)
            baseline = statistics.median(_ms(base[verb], verb, q) for base in theirs)
            target = q == 99 and verb == "retry"
            figures.append(
                Figure(
                    name=f"{verb} latency p{q} over HTTP",
                    value=value,
                    unit="ms",
                    baseline=baseline,
                    baseline_label=(
                        f"bare aiohttp {'POST' if verb == 'retry' else 'PATCH'}, same rate, {sizes[verb]} B body"
                    ),
                    ratio=ratio(value, baseline),
                    target=f"p99 <= {TARGET_P99_MS:g} ms" if target else "(context)",
                    passed=value <= TARGET_P99_MS if target else None,
                    notes=(
                        f"{running} running (parked) + {what[verb]}, {RATE_OPS}/s open loop, {seconds:g} s; "
                        f"median of {rounds} rounds ({', '.join(f'{x:.2f}' for x in each)} ms)"
                        if q == 50
                        else f"rounds {', '.join(f'{x:.1f}' for x in each)} ms; over all rounds: max "
                        f"{1000 * max(samples):.1f} ms, {sum(1 for x in samples if x > 0.005)} of {len(samples)} "
                        "over 5 ms"
                    ),
                    details={
                        "rounds_ms": each,
                        "samples": len(samples),
                        "late_starts": sum(found[verb].late_starts for found in mine),
                        "max_ms": 1000 * max(samples),
                    },
                )
            )
    pause = [_ms(found["pause"], "pause", 99) for found in mine]
    resume = [_ms(found["pause"], "resume", 99) for found in mine]
    figures.append(
        Figure(
            name="(context) pause / resume p99, same serve",
            value=statistics.median(pause),
            unit="ms",
            baseline=statistics.median(resume),
            baseline_label="resume p99 (the latency benchmark's operation, in each round after the edits)",
            ratio=None,
            target="(context)",
            passed=None,
            notes=(
                f"what the machine allowed in the same rounds: pause p99 {', '.join(f'{x:.1f}' for x in pause)} ms, "
                f"resume p99 {', '.join(f'{x:.1f}' for x in resume)} ms"
            ),
            details={"pause_p99_ms": pause, "resume_p99_ms": resume},
        )
    )
    return figures


# --- steps/s, this tree vs the engine before issue 20 -----------------------------------------------------------

CHILD = """
import asyncio, json, sys
from pathlib import Path
import procengine
from bench.common import Context
from bench.steps import engine_steps
from procengine.runtime.event_loop import event_loop_factory

ctx = Context(redis_url=sys.argv[1], redis_pid=int(sys.argv[2]), workdir=Path(sys.argv[3]), quick=False,
              budget_s=600)
with asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
    found = runner.run(engine_steps(ctx, int(sys.argv[4]), timeout_s=float(sys.argv[5])))
found.pop("profile", None)
found["engine_from"] = str(Path(procengine.__file__).parent)
print(json.dumps(found))
"""
"""The steps benchmark's engine, run from whichever tree is the working directory (its `procengine` and `bench`
come first on the path, before the venv's editable install of this tree)."""


def before_tree(ctx: Context) -> Path:
    """The engine (and its steps benchmark) as of BEFORE, unpacked once into the run's work dir."""
    tree = ctx.workdir / f"engine-{BEFORE}"
    if not tree.exists():
        archive = ctx.workdir / f"engine-{BEFORE}.tar"
        subprocess.run(
            ["git", "-C", str(REPO), "archive", "--output", str(archive), BEFORE, "procengine", "bench"], check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
    return tree


def steps_in(ctx: Context, tree: Path, executions: int, timeout_s: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCENGINE_")}
    env["PYTHONPATH"] = str(tree)
    args = [sys.executable, "-c", CHILD, ctx.redis_url, str(ctx.redis_pid), str(ctx.workdir), str(executions)]
    done = subprocess.run(
        [*args, str(timeout_s)], cwd=tree, env=env, capture_output=True, text=True, timeout=timeout_s + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"steps in {tree}: exit {done.returncode}: {done.stderr[-2000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(found["engine_from"]) != tree / "procengine":
        raise RuntimeError(f"steps in {tree} ran the engine of {found['engine_from']}")
    return found


async def steps_figure(ctx: Context) -> Figure:
    before = before_tree(ctx)
    executions = ctx.n(1000, 200)
    rounds = ctx.n(7, 1)  # one round's pair differs by up to 20% on a shared 2-core box: 5 were not enough
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(rounds):  # alternating, the first side swapping each round: a drift hits both alike
        order = [(REPO, mine), (before, theirs)]
        for tree, into in order if i % 2 == 0 else reversed(order):
            await ctx.flush()
            found = await asyncio.to_thread(steps_in, ctx, tree, executions, 120.0)
            into.append(found["steady_per_s"])
    value, baseline = statistics.median(mine), statistics.median(theirs)
    share = ratio(value, baseline)
    paired = [a / b for a, b in zip(mine, theirs, strict=True)]  # each round's two runs were back to back
    return Figure(
        name="steps/s with the repair machinery",
        value=value,
        unit="steps/s",
        baseline=baseline,
        baseline_label=f"the same benchmark on the engine before issue 20 ({BEFORE})",
        baseline_unit="steps/s",
        ratio=share,
        target=f">= {TARGET_STEPS_RATIO:g}x of before",
        passed=share is not None and share >= TARGET_STEPS_RATIO,
        notes=(
            f"bench/steps.py's engine ({executions} executions x 20 set-variables) in a subprocess per round, "
            f"alternating, median of {rounds}: this tree {', '.join(f'{x:,.0f}' for x in mine)}; "
            f"{BEFORE} {', '.join(f'{x:,.0f}' for x in theirs)}; ratio within each round "
            f"{', '.join(f'{x:.2f}' for x in paired)} (median {statistics.median(paired):.2f})"
        ),
        details={"rounds": {"this_tree": mine, BEFORE: theirs, "paired_ratios": paired}},
    )


async def run(ctx: Context) -> list[Figure]:
    figures = await latency_figures(ctx)
    figures.append(await steps_figure(ctx))
    return figures
