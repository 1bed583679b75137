"""What every benchmark shares: the figures they return, the run context (the dedicated Redis, the time
budget, --quick), the `procengine serve` subprocess, the process definitions and small helpers.

Nothing here talks to any Redis but the one `__main__` starts for the run (RedisServer, tmp dir, free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from procengine.http.spec import BASE_PATH

REPO = Path(__file__).resolve().parent.parent
BASE = BASE_PATH  # the front door's own constant
HOST = "127.0.0.1"


# --- figures -----------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One line of the table: procengine's number, its baseline measured in the same run, and the ratio.

    `ratio` is procengine / baseline unless the figure says otherwise (`ratio_note`). `passed` is None for
    figures without a target (shown for context).
    """

    name: str
    value: float
    unit: str
    baseline: float | None
    baseline_label: str
    ratio: float | None
    target: str
    passed: bool | None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    baseline_unit: str | None = None
    """The baseline's unit when it is not `unit`."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ratio(value: float, baseline: float | None) -> float | None:
    if baseline is None or baseline == 0 or math.isnan(baseline):
        return None
    return value / baseline


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- the run context -------------------------------------------------------------------------------


@dataclass
class Context:
    redis_url: str
    redis_pid: int
    workdir: Path
    quick: bool
    budget_s: float
    """The time this benchmark may take; its phases size their windows from it and stop when it is spent."""
    serve_env: dict[str, str] = field(default_factory=dict)
    """Extra environment of every `procengine serve` (--serve-env), for experiments."""
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def client(self, **kwargs: Any) -> Redis:
        return Redis.from_url(self.redis_url, decode_responses=False, **kwargs)

    async def flush(self) -> None:
        """Empty the run's own Redis between benchmarks, so each starts from nothing (never another Redis)."""
        client = self.client()
        try:
            await client.flushall()
            await client.script_flush()
            # compact the append-only file now, so that no rewrite forks in the middle of a measurement
            with contextlib.suppress(Exception):
                await client.bgrewriteaof()
            for _ in range(500):
                info = await client.info("persistence")
                if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
                    break
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()


# --- process definitions ---------------------------------------------------------------------------


def chain_definition(key: str, elements: int) -> dict[str, Any]:
    """`elements` set-variable elements in a row: each bumps a counter and records where it is."""
    steps = []
    for i in range(1, elements + 1):
        step: dict[str, Any] = {
            "key": f"s{i:02d}",
            "type": "set-variable",
            "set": {"counter": "counter + 1", "last": f"'s{i:02d}'"},
        }
        if i < elements:
            step["next"] = f"s{i + 1:02d}"
        steps.append(step)
    return {"key": key, "name": f"{elements} set-variable elements", "threads": [{"key": "main", "elements": steps}]}


def parked_definition(key: str, variables: int = 0) -> dict[str, Any]:
    """A running execution that stays running: optionally sets `variables` variables, then waits for a signal
    nobody sends (its actor is live; the runner sleeps on its wake-up event)."""
    elements: list[dict[str, Any]] = []
    if variables:
        values = variable_values(variables)
        elements.append(
            {"key": "init", "type": "set-variable", "set": {k: _cel(v) for k, v in values.items()}, "next": "wait"}
        )
    elements += [
        {"key": "wait", "type": "wait-signal", "signal": "go", "into": "approval", "next": "done"},
        {"key": "done", "type": "end"},
    ]
    return {"key": key, "name": "parked on a signal", "threads": [{"key": "main", "elements": elements}]}


def ticking_definition(key: str, every_ms: int) -> dict[str, Any]:
    """A running execution that keeps working: wait `every_ms`, bump a counter, loop (four element checkpoints
    a round: the delay's start and end, the set-variable, the if-condition)."""
    elements = [
        {"key": "tick", "type": "delay", "durationMs": every_ms, "next": "bump"},
        {"key": "bump", "type": "set-variable", "set": {"counter": "counter + 1"}, "next": "again"},
        {"key": "again", "type": "if-condition", "condition": "counter < 1000000", "then": "tick", "else": "done"},
        {"key": "done", "type": "end"},
    ]
    return {"key": key, "name": f"ticks every {every_ms} ms", "threads": [{"key": "main", "elements": elements}]}


def variable_values(count: int) -> dict[str, Any]:
    """`count` variables of the kinds a business process holds: ids, amounts, flags, short text."""
    kinds: list[Any] = ["ORD-2026-000123", 599.99, True, "customer@example.com", 3, "EUR", "priority", 42, False, "ok"]
    return {f"var_{i:02d}": kinds[i % len(kinds)] for i in range(count)}


def _cel(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


# --- the engine under test, in its own process -----------------------------------------------------


class Serve:
    """`python -m procengine serve` in a subprocess on a free loopback port, against the run's Redis.

    Logs go to files in the work dir (never a pipe nobody reads). `stop()` is SIGTERM then SIGKILL;
    `kill()` is kill -9. Used as a context manager, it is stopped whatever happens.
    """

    def __init__(
        self,
        ctx: Context,
        name: str,
        *,
        prefix: str,
        pause_grace_ms: int = 100,
        passivate_after_ms: int | None = None,
        node_ttl_ms: int | None = None,
        env: dict[str, str] | None = None,
        log_level: str = "WARNING",
    ) -> None:
        self.name = name
        self.args = [
            sys.executable, "-m", "procengine", "serve",
            "--redis-url", ctx.redis_url,
            "--host", HOST, "--port", "0",
            "--prefix", prefix,
            "--log-level", log_level,
            "--pause-grace-ms", str(pause_grace_ms),
        ]  # fmt: skip
        if passivate_after_ms is not None:
            self.args += ["--passivate-after-ms", str(passivate_after_ms)]
        if node_ttl_ms is not None:
            self.args += ["--node-ttl-ms", str(node_ttl_ms)]
        # the developer's PROCENGINE_* environment must not change what is measured; --serve-env may
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PROCENGINE_")}
        self.env.update(ctx.serve_env)
        self.env.update(env or {})
        self.stdout_path = ctx.workdir / f"{name}.stdout"
        self.stderr_path = ctx.workdir / f"{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.cwd = REPO
        """Where serve runs: another tree's engine (a baseline) runs from there, with PYTHONPATH set to it."""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 60.0) -> Serve:
        seen = self.stdout_path.stat().st_size if self.stdout_path.exists() else 0  # a restart appends
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                self.args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.cwd, env=self.env,
                start_new_session=True,  # a Ctrl-C reaches the bench, which stops this in order
                preexec_fn=die_with_parent,
            )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + timeout_s
        while True:
            with open(self.stdout_path, "rb") as out:
                out.seek(seen)
                text = out.read().decode(errors="replace")
            for line in text.splitlines():
                if "serving on http://" in line:
                    self.url = line.split("serving on ", 1)[1].strip()
                    return self
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: serve exited with {self.process.returncode}:\n{self.stderr_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name}: serve did not print its address within {timeout_s}s")
            time.sleep(0.02)

    def stderr_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        _live.discard(self)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _live.discard(self)

    def __enter__(self) -> Serve:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_live: set[Any] = set()
"""Every child process still running (Serve, the bare aiohttp app): `stop_all` ends them on any exit."""


def register_child(child: Any) -> None:
    _live.add(child)


def unregister_child(child: Any) -> None:
    _live.discard(child)


def stop_all_children() -> None:
    for child in list(_live):
        with contextlib.suppress(Exception):
            child.stop()


def die_with_parent() -> None:
    """preexec_fn of the children: on Linux, SIGTERM them if the bench dies without cleaning up (kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc; psutil elsewhere if it is installed)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # type: ignore[import-untyped]  # only off Linux

    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; psutil elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)


class CpuMeter:
    """CPU used by some processes over a window, as a share of one core: `with CpuMeter({...}) as m: ...`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.share: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = time.perf_counter()
        self._cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._start
        self.share = {name: round((cpu_seconds(pid) - self._cpu[name]) / wall, 2) for name, pid in self.pids.items()}


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then t[0] is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)
