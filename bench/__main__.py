"""`python -m bench`: procengine's benchmark suite (`make bench`).

Starts a dedicated redis-server (procengine.store.embedded.RedisServer: a tmp dir, a free loopback port),
runs each benchmark within its own time budget, prints one table (figure, procengine, baseline, ratio,
target, pass) and writes bench/results.json. Every subprocess is stopped at the end, whatever happens.

    python -m bench                 # everything, about 11 minutes on 2 cores (repair: about 3)
    python -m bench --quick         # smaller counts and windows: a smoke run, under 2 minutes
    python -m bench --only steps    # one benchmark (repeatable: --only steps --only status)
    python -m bench --profile       # also profile the engine: steps (cProfile, top 25), flat (py-spy)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.common import Context, Figure, die_with_parent, stop_all_children
from bench.report import machine_info, render, write_json
from procengine.runtime.event_loop import event_loop_factory
from procengine.store.embedded import RedisServer

# name -> (module, full budget s, quick budget s). The budgets add up to 715 s (about 12 minutes with the
# Redis start and the report); each benchmark sizes its windows from what it has left.
BENCHMARKS: dict[str, tuple[str, float, float]] = {
    "steps": ("bench.steps", 80, 20),
    "latency": ("bench.latency", 50, 12),
    "status": ("bench.status", 40, 10),
    "memory": ("bench.memory", 75, 16),
    "adoption": ("bench.adoption", 45, 12),
    "scaleout": ("bench.scaleout", 70, 20),
    "foreach": ("bench.foreach", 40, 12),
    "listing": ("bench.listing", 30, 10),
    "filters": ("bench.filters", 30, 10),
    "repair": ("bench.repair", 240, 45),
    "socket": ("bench.socket", 30, 10),
    "flat": ("bench.flat", 180, 40),
    "starts": ("bench.starts", 75, 30),
    "idle": ("bench.idle", 900, 60),
    "history": ("bench.history", 120, 40),
    "bulk": ("bench.bulk", 60, 20),
    "workers": ("bench.workers", 60, 25),
    "schedules": ("bench.schedules", 40, 15),
}
RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smaller counts and windows (smoke run, < 2 min)")
    parser.add_argument(
        "--profile", action="store_true", help="profile the engine: steps (cProfile), flat (py-spy, bench/spy.py)"
    )
    parser.add_argument(
        "--serve-env",
        action="append",
        default=[],
        metavar="PROCENGINE_NAME=VALUE",
        help="extra environment for every `procengine serve` the bench starts, for experiments (repeatable); "
        "e.g. PROCENGINE_RECONCILE_INTERVAL_MS=600000",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed (not only on errors)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = args.only or list(BENCHMARKS)
    for name in [n for n in os.environ if n.startswith("PROCENGINE_")]:  # what is measured is the defaults
        del os.environ[name]
    serve_env = dict(pair.split("=", 1) for pair in args.serve_env if "=" in pair)
    # a SIGTERM (make interrupted, a CI timeout) unwinds like Ctrl-C, so the finally blocks stop the children
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    began = time.monotonic()
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    machine: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="procengine-bench-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis")
        guard: subprocess.Popen[bytes] | None = None
        try:
            redis.start()
            guard = _guard(redis.pid or 0)
            redis_version = _redis_version(redis.url)
            machine = machine_info(redis_version)
            print(
                f"procengine bench: {machine['nproc']} cores ({machine['cpu_model']}), Python {machine['python']}, "
                f"redis-server {redis_version} on {redis.url}{' (quick)' if args.quick else ''}",
                flush=True,
            )
            for name in names:
                module_name, full, quick = BENCHMARKS[name]
                budget = quick if args.quick else full
                ctx = Context(
                    redis_url=redis.url,
                    redis_pid=redis.pid or 0,
                    workdir=workdir,
                    quick=args.quick,
                    budget_s=budget,
                    serve_env=serve_env,
                )
                print(f"- {name} (budget {budget:.0f}s) ...", end="", flush=True)
                started = time.monotonic()
                try:
                    module = importlib.import_module(module_name)
                    kwargs = {"profile": True} if name in ("steps", "flat") and args.profile else {}
                    # on the loop `procengine serve` runs on by default, so the in-process engine (steps) is
                    # the one serve runs; the load generator then runs on it too, for both sides alike
                    with asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
                        found = runner.run(module.run(ctx, **kwargs))
                    figures += found
                    print(f" {time.monotonic() - started:.1f}s", flush=True)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    print(f" FAILED after {time.monotonic() - started:.1f}s", flush=True)
                    traceback.print_exc()
                finally:
                    stop_all_children()
                    timings[name] = round(time.monotonic() - started, 2)
                    gc.collect()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping every process the bench started", file=sys.stderr, flush=True)
            return 130
        finally:
            stop_all_children()
            with contextlib.suppress(Exception):
                redis.stop()
            if guard is not None:
                guard.kill()
                guard.wait()
    timings["total"] = round(time.monotonic() - began, 2)
    print()
    print(render(figures, failures))
    if args.quick:
        print(
            "\nquick run: smaller counts than the issue asks for (200 executions, 2,000 paused, short windows);"
            " a smoke test, its verdicts are indicative only"
        )
    for figure in figures:
        if figure.details.get("profile_top"):
            how = "py-spy" if "samples" in figure.details["profile_top"] else "cProfile, by own time"
            print(f"\n{figure.name}: engine profile ({how}):")
            print(figure.details["profile_top"])
    run_args = {"quick": args.quick, "only": names, "serve_env": serve_env}
    write_json(args.out, machine, figures, failures, timings, run_args)
    passed = all(f.passed is not False for f in figures) and not failures
    print(f"\n{'all targets met' if passed else 'some targets missed'}; {timings['total']:.0f}s; wrote {args.out}")
    if failures:
        return 1
    return 1 if args.strict and not passed else 0


def _guard(redis_pid: int) -> subprocess.Popen[bytes]:
    """A watchdog that stops the run's redis-server if the bench itself is killed (kill -9 skips every finally;
    the serve and bare-http children die with their parent through PR_SET_PDEATHSIG, but RedisServer starts
    redis-server itself). Killed with SIGKILL at a normal exit, so its trap does not run then."""
    script = f"trap 'kill {redis_pid}; exit 0' TERM; while :; do sleep 1; done"
    return subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def _redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
