"""The sequential set-variable chain at several commits, alternated round by round on one Redis (issue 21).

    .venv/bin/python -m bench.chain_bisect REDIS_URL REV [REV ...] [--rounds 7] [--runs 5] [--steps 200]

Each REV's `procengine` is unpacked (`git archive`) into a temporary directory and run in a subprocess with it first
on the path (this tree's `bench` after it). Per round and REV: the one-round-trip floor (bench/steps.py), five
200-step chains one after another (after a warm-up), the floor again; then, once per REV, the exact counts of one
chain: Redis commands per step (INFO commandstats) and Python calls per step (cProfile). A machine that is slower
for a while slows the floor and the chain alike, so the chain ÷ floor ratio is what to compare across commits.
Empties nothing: use a Redis of your own (keys go under the prefix `bisect<pid>`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


async def _child(url: str, steps: int, runs: int, count: bool) -> dict[str, Any]:
    """The chain with whichever procengine comes first on the path (the layouts since 2026-12-01)."""
    try:
        from procengine.api.service import Caller
        from procengine.api.views import StartRequest
        from procengine.node.node import Node
        from procengine.runtime.metrics import Metrics
    except ImportError:  # the layout before issue 18
        from procengine.actors.engine import Engine as Node  # type: ignore[no-redef]
        from procengine.metrics import Metrics  # type: ignore[no-redef]
        from procengine.service import Caller  # type: ignore[no-redef]
        from procengine.views import StartRequest  # type: ignore[no-redef]
    from redis.asyncio import Redis

    from bench.common import chain_definition
    from procengine.settings import Settings
    from procengine.store.connection import connect
    from procengine.tasks import builtin_handlers

    caller = Caller(tenant="default", by="bench", request_id="bench")
    settings = Settings(redis_url=url, prefix=f"bisect{os.getpid()}", log_level="WARNING")
    metrics = Metrics()
    redis = connect(url, timeout_s=settings.redis_timeout_s, retries=settings.redis_retries, metrics=metrics)
    probe = Redis.from_url(url)
    found: dict[str, Any] = {}
    try:
        async with Node(redis, settings, builtin_handlers(), metrics=metrics) as engine:
            summary, _ = await engine.register_process(caller, chain_definition("chain", steps))
            await engine.catalog.compiled("default", summary.processID)

            async def one() -> float:
                started = time.perf_counter()
                request = StartRequest(processID=summary.processID, variables={"counter": 0})
                result, _ = await engine.start_execution(caller, request)
                actor = engine.registry.get(result.executionID)
                if actor is not None:
                    await asyncio.wait_for(actor.stopped.wait(), timeout=60)
                return steps / (time.perf_counter() - started)

            await one()
            if count:
                before: Any = await probe.info("commandstats")
                profiler = cProfile.Profile()
                profiler.enable()
                await one()
                profiler.disable()
                after: Any = await probe.info("commandstats")
                calls = {
                    k.removeprefix("cmdstat_"): v["calls"] - before.get(k, {"calls": 0})["calls"]
                    for k, v in after.items()
                }
                found["commands_per_step"] = {k: round(v / steps, 2) for k, v in calls.items() if v and k != "info"}
                found["python_calls_per_step"] = round(pstats.Stats(profiler).total_calls / steps)  # type: ignore[attr-defined]
            else:
                found["steps_per_s"] = [await one() for _ in range(runs)]
    finally:
        await redis.aclose()
        await probe.aclose()
    return found


def _run(tree: Path, *args: str) -> Any:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO}"}
    done = subprocess.run([sys.executable, "-m", "bench.chain_bisect", *args], env=env, cwd=tree,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("revs", nargs="*")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--child", choices=["chain", "count", "floor"])
    args = parser.parse_args()
    if args.child is not None:
        import uvloop

        uvloop.install()
        if args.child == "floor":
            from bench.common import Context
            from bench.steps import round_trip_floor

            ctx = Context(
                redis_url=args.url, redis_pid=0, workdir=Path(tempfile.gettempdir()), quick=False, budget_s=60
            )
            print(json.dumps(asyncio.run(round_trip_floor(ctx, 1.0))))
        else:
            print(json.dumps(asyncio.run(_child(args.url, args.steps, args.runs, args.child == "count"))))
        return
    work = Path(tempfile.mkdtemp(prefix="chain-bisect-"))
    trees: dict[str, Path] = {}
    for rev in args.revs:
        trees[rev] = work / rev
        trees[rev].mkdir()
        archive = subprocess.run(["git", "archive", rev, "procengine"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(trees[rev])], input=archive.stdout, check=True)
    ratios: dict[str, list[float]] = {rev: [] for rev in trees}
    common = [args.url, "--steps", str(args.steps), "--runs", str(args.runs)]
    for round_ in range(args.rounds):
        for rev in trees if round_ % 2 == 0 else reversed(list(trees)):
            before = _run(REPO, *common, "--child", "floor")
            chain = statistics.median(_run(trees[rev], *common, "--child", "chain")["steps_per_s"])
            after = _run(REPO, *common, "--child", "floor")
            ratios[rev].append(chain / ((before + after) / 2))
            print(f"round {round_ + 1} {rev}: chain {chain:,.0f} steps/s, floor {before:,.0f}/{after:,.0f} calls/s, "
                  f"ratio {ratios[rev][-1]:.2f}", flush=True)  # fmt: skip
    for rev, tree in trees.items():
        counts = _run(tree, *common, "--child", "count")
        print(f"{rev}: chain / floor median {statistics.median(ratios[rev]):.2f} over {args.rounds} rounds; {counts}")


if __name__ == "__main__":
    main()
