"""`python -m bench.peers` (`make bench ARGS=--peers`): procengine beside Restate, Temporal, DBOS and SpiffWorkflow.

Two workloads, the same on every side:

- chain: one execution of 200 durable steps in a row (steps/s = 200 over the time from its start to its result);
- fan-out: 100 executions of 20 durable steps each, started at once (steps/s = 2,000 over the time to the last).

procengine runs in this process (bench/peers/procengine_side.py) on a redis-server of the run's own, over its unix
socket; each peer runs in a child process on the peers' interpreter (bench/peers/.venv, made by `make bench
ARGS=--peers`; Restate's server from bench/peers/node_modules). procengine is measured in the same run: its rounds
before the first peer and after each one, and each ratio is procengine's median ÷ the peer's median. A peer that
cannot run here prints a skip line with the reason; with no peers' environment at all every peer is skipped and
nothing else runs.

    python -m bench.peers                       # every peer, 3 rounds
    python -m bench.peers --quick               # 1 round
    python -m bench.peers --only dbos --only spiffworkflow
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = HERE / ".venv"
PEERS = {  # name -> driver module (run on the peers' interpreter)
    "restate": "bench.peers.restate_peer",
    "temporal": "bench.peers.temporal_peer",
    "dbos": "bench.peers.dbos_peer",
    "spiffworkflow": "bench.peers.spiff_peer",
}
CHAIN, EXECUTIONS, STEPS = 200, 100, 20
DRIVER_TIMEOUT_S = 900
RESULTS = HERE / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(PEERS), help="this peer only (repeatable)")
    parser.add_argument("--quick", action="store_true", help="one round instead of three")
    parser.add_argument("--venv", type=Path, default=VENV, help=f"the peers' environment (default {VENV})")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    names = args.only or list(PEERS)
    python = args.venv / "bin" / "python"
    if not python.exists():
        for name in names:
            print(f"skip {name}: no peers' environment at {args.venv} (`make bench ARGS=--peers` creates it)")
        print("peers: nothing to compare")
        return 0
    from bench.peers.run import compare  # imports procengine: only when there is something to compare with

    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory(prefix="procengine-peers-") as tmp:
        outcome = asyncio.run(compare(Path(tmp), python, names, rounds, _driver))
    print(outcome.table())
    args.out.write_text(json.dumps(outcome.to_json(), indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


def _driver(python: Path, name: str, workdir: Path, rounds: int, redis_url: str) -> list[dict[str, Any]]:
    """Run one peer's driver; its result lines (a skip line when it cannot run)."""
    command = [
        str(python), "-m", PEERS[name], "--workdir", str(workdir / name), "--rounds", str(rounds),
        "--chain", str(CHAIN), "--executions", str(EXECUTIONS), "--steps", str(STEPS), "--redis-url", redis_url,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return [{"peer": name, "skip": f"its driver did not finish within {DRIVER_TIMEOUT_S} s"}]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}, no output"])[-1]
        return [{"peer": name, "skip": why[:300]}]
    for line in lines:
        line["driver_s"] = round(time.monotonic() - started, 1)
    return lines


if __name__ == "__main__":
    sys.exit(main())
