"""What every peer driver shares (standard library only: it runs on the peers' interpreter, without procengine).

A driver is `python -m bench.peers.<name>_peer --workdir DIR --rounds N --chain 200 --executions 100 --steps 20`,
run from the repository root. It starts what its peer needs, runs the two workloads `rounds` times, and prints one
JSON object as its last line of stdout: `{"peer", "version", "variant", "rounds": [{"chain_s", "fanout_s"}], "notes"}`,
or `{"peer", "skip": "why"}` when the peer cannot run here. Everything it started is stopped before it exits.

- chain: one execution of `chain` durable steps in a row, timed from the start request to its result;
- fanout: `executions` executions of `steps` durable steps each, all started at once, timed until the last result.

A durable step is one the peer records before going on (Restate's `ctx.run`, a Temporal activity or local activity,
a DBOS step, a SpiffWorkflow task followed by a Redis SET of the serialized workflow).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Args:
    workdir: Path
    rounds: int
    chain: int
    executions: int
    steps: int
    redis_url: str


def parse_args() -> Args:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chain", type=int, default=200)
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--redis-url", default="")
    ns = parser.parse_args()
    ns.workdir.mkdir(parents=True, exist_ok=True)
    return Args(ns.workdir, ns.rounds, ns.chain, ns.executions, ns.steps, ns.redis_url)


@dataclass
class Result:
    peer: str
    version: str
    variant: str = ""
    rounds: list[dict[str, float]] = field(default_factory=list)
    notes: str = ""

    def emit(self) -> None:
        print(json.dumps(self.__dict__), flush=True)


def skip(peer: str, why: str) -> None:
    print(json.dumps({"peer": peer, "skip": why}), flush=True)


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout_s: float = 60.0) -> None:
    """Until something accepts on 127.0.0.1:`port`; RuntimeError if `process` exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout_s:.0f}s")


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def child(
    args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (its output in `log`), SIGTERM then SIGKILL at the end; it dies with this process too."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            cwd=cwd, preexec_fn=_die_with_parent,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def run_main(peer: str, body: Any) -> int:
    """Run a driver's body; a failure is reported as a skip line with the reason (and exit 1)."""
    try:
        body()
    except Exception as exc:  # a peer that cannot run says why, in one line
        skip(peer, f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500])
        return 1
    return 0


def now() -> float:
    return time.perf_counter()


__all__ = [
    "Args",
    "Result",
    "child",
    "free_port",
    "now",
    "parse_args",
    "run_main",
    "skip",
    "tail",
    "version",
    "wait_port",
]
