"""Chaos: several engine nodes on one Redis, executions running, clients asking any node anything, and nodes
killed (kill -9) and restarted, or restarted one by one (SIGTERM, a rolling restart), or the Redis master killed
under Sentinels (failover). During the faults the clients start new executions (with idempotency keys), send
keyed signals (`note`, each retried with its key until answered, some sent twice on purpose), pause and resume,
and cancel a few executions set aside for it. At the end every execution is driven to its end and the run is
audited (bench/chaos_audit.py says what each check means):

- every execution `completed` (the definition cannot fail): a `failed` one fails the audit with its error, and
  only the executions set aside for cancelling may end `cancelled`;
- no element completed more often than it ran; no acknowledged transition or signal missing from the log;
- every keyed signal taken exactly once (the log's `signal-received`, and the `notes` variable it lands in);
- no element started, ended or retried while its execution was paused, and every pause resumed;
- the tasks' side effects, counted by the task handler in a Redis of its own (bench/chaos_handlers.py), agree
  with the log: each completed element has one, and each re-run is one the log names (a retry, a re-run after a
  pause, an adoption after a kill); and no two runs of one attempt overlapped in time (a concurrent run);
- no request answered 5xx other than 503, no request that 30 s of retries did not get answered;
- each execution's longest standstill while running and not paused (a figure; under 2 s is the target of a
  rolling restart).

    python -m bench.chaos                              # 3 nodes, 300 executions, kill -9 every few s, 120 s
    python -m bench.chaos --mode rolling --seconds 40  # a rolling restart of the 3 nodes, SIGTERM each in turn
    python -m bench.chaos --mode failover --durability replicated --executions 100 --seconds 30

failover: Redis is a master with a replica under three Sentinels (testing.topologies.LocalSentinel) and the nodes
stay up; every few seconds the master is killed (kill -9), the Sentinels promote the replica, and the old
master comes back as the new one's replica. With `--durability replicated` the audit must find nothing; with
`local` it may find what asynchronous replication lost (on loopback the replica is rarely behind, so usually
nothing).

Exit code 0 when the audit found nothing (and, with --max-standstill-s, the standstill is under it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.chaos_audit import FINAL, NOTES, Audit, Observed, audit, parse_effects
from bench.chaos_handlers import EFFECTS_KEY, EFFECTS_URL_ENV, NODE_ENV
from bench.common import BASE, Context, Serve, stop_all_children
from procengine.store.embedded import RedisServer
from procengine.testing.topologies import LocalSentinel

ROUND_MS = 150
"""A loop round of the chaos process takes about this: a 50 ms task and a 100 ms delay."""
NODE_ENV_VARS = {
    "PROCENGINE_NODE_HEARTBEAT_MS": "200",
    "PROCENGINE_RECONCILE_INTERVAL_MS": "250",
    "PROCENGINE_PASSIVATE_AFTER_MS": "2000",
}


def chaos_definition() -> dict[str, Any]:
    """A definition that cannot fail. main: a loop of a task, a delay and a counter (`limit` rounds, a start
    variable), then a wait for the signal `go` and a last task. side: a delay and a task. inbox: takes `NOTES`
    keyed `note` signals, each into `notes` (so a signal taken twice shows there). Every element but the loop's
    and the inbox's completes once."""
    work = {"ms": "50"}
    return {
        "key": "chaos",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "work", "type": "task", "handler": "chaos-work", "input": work, "next": "nap"},
                    {"key": "nap", "type": "delay", "durationMs": 100, "next": "count"},
                    {"key": "count", "type": "set-variable", "set": {"n": "n + 1"}, "next": "more"},
                    {"key": "more", "type": "if-condition", "condition": "n < limit", "then": "work", "else": "go"},
                    {"key": "go", "type": "wait-signal", "signal": "go", "into": "got", "next": "last"},
                    {"key": "last", "type": "task", "handler": "chaos-work", "input": {"ms": "10"}, "next": "done"},
                    {"key": "done", "type": "end"},
                ],
            },
            {
                "key": "side",
                "elements": [
                    {"key": "side_nap", "type": "delay", "durationMs": 300, "next": "side_work"},
                    {"key": "side_work", "type": "task", "handler": "chaos-work", "input": {"ms": "80"},
                     "next": "side_end"},
                    {"key": "side_end", "type": "end"},
                ],
            },
            {
                "key": "inbox",
                "elements": [
                    {"key": "inbox", "type": "wait-signal", "signal": "note", "into": "note", "next": "file"},
                    {"key": "file", "type": "set-variable", "set": {"notes": "notes + [note.key]"}, "next": "full"},
                    {"key": "full", "type": "if-condition", "condition": f"size(notes) < {NOTES}", "then": "inbox",
                     "else": "inbox_end"},
                    {"key": "inbox_end", "type": "end"},
                ],
            },
        ],
    }  # fmt: skip


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    """5xx other than 503: must stay empty."""
    unanswered: list[str] = field(default_factory=list)
    """Requests whose 503s (or refused connections) retries did not get past: must stay empty."""
    acknowledged: list[tuple[int, str, str]] = field(default_factory=list)
    """(execution, event the log must show, request id or signal key)."""
    kills: int = 0
    restarts: int = 0
    failovers: list[float] = field(default_factory=list)
    """Seconds from a master's kill to the Sentinels' naming the new one."""
    gone_at: dict[int, float] = field(default_factory=dict)
    """pid of a node -> when it was killed or stopped (wall clock, as the side effects' times)."""


@dataclass
class Executions:
    """The executions the clients started, and what they sent them."""

    ids: list[int] = field(default_factory=list)
    limits: dict[int, int] = field(default_factory=dict)
    cancellable: set[int] = field(default_factory=set)
    """Set aside for cancels: only these may end cancelled."""
    starts: dict[str, set[int]] = field(default_factory=dict)
    """Start idempotency key -> the executions its answers named."""
    unstarted: list[tuple[str, int]] = field(default_factory=list)
    """Starts whose answer never came: (key, limit), asked again at the end with the same key."""
    next_note: Counter[int] = field(default_factory=Counter)
    notes: dict[int, list[str]] = field(default_factory=dict)
    """The `note` keys acknowledged (202) to each execution."""
    notes_sent: int = 0
    """Every delivery of a note, repeats of an acknowledged key included."""

    def add(self, execution_id: int, limit: int, rng: random.Random) -> None:
        if execution_id in self.limits:
            return
        self.ids.append(execution_id)
        self.limits[execution_id] = limit
        if rng.random() < 0.05:
            self.cancellable.add(execution_id)

    def note_key(self, execution_id: int) -> str | None:
        """The next note to send to an execution (claimed: no other client sends it), None when all were."""
        index = self.next_note[execution_id]
        if index >= NOTES:
            return None
        self.next_note[execution_id] += 1
        return f"note-{execution_id}-{index}"


class Nodes:
    """The engine nodes: their current addresses (a restarted node listens on a new port)."""

    def __init__(self, ctx: Context, count: int, grace_ms: int, ttl_ms: int, durability: str, effects_url: str) -> None:
        self.servers = []
        for i in range(count):
            env = {**NODE_ENV_VARS, "PROCENGINE_DURABILITY": durability, EFFECTS_URL_ENV: effects_url}
            env[NODE_ENV] = f"node{i}"
            server = Serve(
                ctx, f"node{i}", prefix="chaos", pause_grace_ms=grace_ms, node_ttl_ms=ttl_ms, env=env, log_level="INFO"
            )
            server.args += ["--handlers", "bench.chaos_handlers"]
            self.servers.append(server)
        self.up: list[bool] = [False] * count

    async def start_all(self) -> None:
        await asyncio.gather(*(self.start(i) for i in range(len(self.servers))))

    async def start(self, i: int) -> None:
        await asyncio.to_thread(self.servers[i].start)
        self.up[i] = True

    def urls(self) -> list[str]:
        return [server.url for server, up in zip(self.servers, self.up, strict=True) if up]

    async def kill(self, i: int, tally: Tally) -> None:
        self.up[i] = False
        pid = self.servers[i].pid
        await asyncio.to_thread(self.servers[i].kill)
        tally.gone_at[pid] = time.time()

    async def terminate(self, i: int, tally: Tally) -> int:
        """SIGTERM and wait: the node drains; returns its exit code."""
        self.up[i] = False
        server = self.servers[i]
        pid = server.pid
        await asyncio.to_thread(server.stop)
        tally.gone_at[pid] = time.time()
        assert server.process is not None
        return server.process.returncode

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


class Client:
    """Requests to a random live node, with the retries a client of a load-balanced service makes: a 503 or a
    refused connection is retried on any node (after Retry-After, capped), for `retry_for_s` at most."""

    def __init__(self, session: aiohttp.ClientSession, nodes: Nodes, tally: Tally, retry_for_s: float) -> None:
        self.session = session
        self.nodes = nodes
        self.tally = tally
        self.retry_for_s = retry_for_s
        self._ids = itertools.count(1)

    async def call(
        self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, str]:
        """(status, data or error, request id); a 5xx other than 503 is recorded, a never-answered one too, with
        what each try met (to tell why)."""
        request_id = f"chaos-{next(self._ids)}"
        began = time.monotonic()
        give_up = began + self.retry_for_s
        label = f"{method} {path.split('/')[-1] if path.count('/') > 3 else path}"
        tries: list[str] = []
        while time.monotonic() < give_up:
            urls = self.nodes.urls()
            if not urls:
                await asyncio.sleep(0.05)
                continue
            url = random.choice(urls)
            at = f"+{time.monotonic() - began:.1f}s {url.rsplit(':', 1)[-1]}"
            try:
                async with self.session.request(
                    method,
                    url + BASE + path,
                    json=json_body,
                    headers={"X-Request-ID": request_id, **(headers or {})},
                    timeout=aiohttp.ClientTimeout(total=min(30.0, max(give_up - time.monotonic(), 1.0))),
                ) as response:
                    body = await response.json(content_type=None)
                    status = response.status
                    retry_after = float(response.headers.get("Retry-After", "0.2"))
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:  # a node killed under us
                tries.append(f"{at} {type(exc).__name__}")
                await asyncio.sleep(0.05)
                continue
            self.tally.requests[f"{label} {status}"] += 1
            if status == 503:
                tries.append(f"{at} 503 {body['error']['message']}")
                await asyncio.sleep(min(retry_after, 0.5))
                continue
            if status >= 500:
                self.tally.server_errors.append(f"{method} {path}: {status} {body}")
            return status, body.get("data") if body.get("success") else body.get("error"), request_id
        self.tally.unanswered.append(f"{method} {path} ({request_id}): {len(tries)} tries: " + "; ".join(tries[-6:]))
        return 0, None, request_id


async def start_one(client: Client, runs: Executions, key: str, limit: int, rng: random.Random) -> None:
    """Start an execution with an idempotency key (its answer lost: asked again at the end, same key)."""
    body = {"processKey": "chaos", "variables": {"n": 0, "limit": limit, "notes": []}, "idempotencyKey": key}
    status, data, _ = await client.call("POST", "/executions/processes", json_body=body)
    if status in (200, 201):
        runs.starts.setdefault(key, set()).add(data["executionID"])
        runs.add(data["executionID"], limit, rng)
    elif status == 0:
        runs.unstarted.append((key, limit))
    else:
        client.tally.server_errors.append(f"start {key}: {status} {data}")


async def starter(client: Client, runs: Executions, stop: asyncio.Event, rng: random.Random, seconds: float) -> None:
    """During the faults: a start every 0.2-0.8 s, with as many rounds as are left of the chaos; now and then the
    same start again (it must name the same execution)."""
    began = time.monotonic()
    for n in itertools.count():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(0.2, 0.8)):
                await stop.wait()
        if stop.is_set():
            return
        left_s = max(seconds - (time.monotonic() - began), 0.0)
        limit = int(left_s * 1000 / ROUND_MS) + 20
        key = f"chaos-start-{n}"
        await start_one(client, runs, key, limit, rng)
        if rng.random() < 0.2:
            await start_one(client, runs, key, limit, rng)


async def send_note(client: Client, runs: Executions, execution_id: int, key: str) -> int:
    base = f"/executions/processes/{execution_id}"
    runs.notes_sent += 1
    status, _, _ = await client.call(
        "POST", base + "/signals/note", json_body={"key": key}, headers={"Idempotency-Key": key}
    )
    if status == 202 and key not in runs.notes.setdefault(execution_id, []):
        runs.notes[execution_id].append(key)
        client.tally.acknowledged.append((execution_id, "signal-received", key))
    return status


async def pester(client: Client, runs: Executions, stop: asyncio.Event, rng: random.Random) -> None:
    """One client: random requests for random executions until `stop`."""
    tally = client.tally
    while not stop.is_set():
        execution_id = rng.choice(runs.ids)
        base = f"/executions/processes/{execution_id}"
        roll = rng.random()
        if roll < 0.30:
            await client.call("GET", base + "/status")
        elif roll < 0.38:
            await client.call("GET", base + "/log")
        elif roll < 0.55:
            status, _, rid = await client.call("POST", base + "/pause", json_body={"reason": "chaos"})
            if status == 200:
                tally.acknowledged.append((execution_id, "paused", rid))
            if status in (200, 409):  # a 409 may be our own pause, applied before a lost answer: resume it too
                await asyncio.sleep(rng.uniform(0.1, 0.6))
                status, _, rid = await client.call("POST", base + "/resume")
                if status == 200:
                    tally.acknowledged.append((execution_id, "resumed", rid))
        elif roll < 0.85:
            key = runs.note_key(execution_id)
            if key is not None:
                status = await send_note(client, runs, execution_id, key)
                if status == 202 and rng.random() < 0.3:  # the same signal again: it must not be taken twice
                    await send_note(client, runs, execution_id, key)
        elif roll < 0.87 and execution_id in runs.cancellable:
            status, _, rid = await client.call("POST", base + "/cancel", json_body={"reason": "chaos"})
            if status == 200:
                tally.acknowledged.append((execution_id, "cancelled", rid))
        else:
            await client.call("GET", base + "/elements")
        await asyncio.sleep(rng.uniform(0.0, 0.02))


async def break_nodes(nodes: Nodes, tally: Tally, mode: str, stop: asyncio.Event, rng: random.Random) -> None:
    """kill: every 2-5 s, kill -9 a random node and start it again a moment later. rolling: SIGTERM each node in
    turn, start it again, wait a little, next; then again, until `stop`."""
    order = itertools.cycle(range(len(nodes.servers)))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(2.0, 5.0) if mode == "kill" else 1.0):
                await stop.wait()
        if stop.is_set():
            return
        i = rng.randrange(len(nodes.servers)) if mode == "kill" else next(order)
        if mode == "kill":
            await nodes.kill(i, tally)
            tally.kills += 1
            await asyncio.sleep(rng.uniform(0.2, 1.0))
        else:
            code = await nodes.terminate(i, tally)
            if code != 0:
                tally.server_errors.append(f"node{i} exited with {code} on SIGTERM")
        await nodes.start(i)
        tally.restarts += 1


async def fail_over(sentinel: LocalSentinel, tally: Tally, stop: asyncio.Event, rng: random.Random) -> None:
    """Every 4-8 s: kill -9 the Redis master, wait for the Sentinels to promote its replica, and start the old
    master again as the new one's replica (until then, `replicated` writes cannot be acknowledged)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rng.uniform(4.0, 8.0)):
                await stop.wait()
        if stop.is_set():
            return
        killed_at = time.monotonic()
        old = await asyncio.to_thread(sentinel.kill_master)
        tally.kills += 1
        await asyncio.to_thread(sentinel.wait_failover, old)
        tally.failovers.append(time.monotonic() - killed_at)
        await asyncio.to_thread(sentinel.restart, old)
        tally.restarts += 1


async def drive_to_the_end(
    client: Client, runs: Executions, within_s: float, rng: random.Random, effects: Redis
) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """Until every execution is final, once a second: start again what never answered (same key), resume what is
    paused, send each running execution the notes it has not acknowledged (same keys) and the signal `go` once
    (it waits in the execution's memory until the loop reaches `go`). Gives up after `within_s`, or later while
    tasks still run (the side effects grow: a loaded machine is slow, not broken), but never after 30 s without
    a task run. Returns the final statuses, and the status each other execution was last seen in."""
    final: dict[int, dict[str, Any]] = {}
    last_seen: dict[int, str] = {}
    signalled: set[int] = set()
    gate = asyncio.Semaphore(16)

    async def drive(execution_id: int) -> None:
        base = f"/executions/processes/{execution_id}"
        async with gate:
            status, data, _ = await client.call("GET", base + "/status")
            if status != 200:
                return
            last_seen[execution_id] = data["status"]
            if data["status"] in FINAL:
                final[execution_id] = data
                return
            if data["status"] == "paused":
                await client.call("POST", base + "/resume")
            for index in range(NOTES):
                key = f"note-{execution_id}-{index}"
                if key not in runs.notes.get(execution_id, []):
                    runs.next_note[execution_id] = NOTES  # no client sends any more of them
                    await send_note(client, runs, execution_id, key)
            if execution_id not in signalled:
                key = f"end-{execution_id}"
                status, _, _ = await client.call(
                    "POST", base + "/signals/go", json_body={}, headers={"Idempotency-Key": key}
                )
                if status == 202:
                    signalled.add(execution_id)
                    client.tally.acknowledged.append((execution_id, "signal-received", key))

    deadline = time.monotonic() + within_s
    ran, ran_at = -1, time.monotonic()
    while len(final) < len(runs.ids) or runs.unstarted:
        now = time.monotonic()
        if (count := await effects.llen(EFFECTS_KEY)) != ran:
            ran, ran_at = count, now
        if now > deadline and now - ran_at > 30:
            break
        unstarted, runs.unstarted = runs.unstarted, []
        for key, limit in unstarted:
            await start_one(client, runs, key, limit, rng)
        await asyncio.gather(*(drive(i) for i in runs.ids if i not in final))
        await asyncio.sleep(1.0)
    return final, {i: status for i, status in last_seen.items() if i not in final}


async def observe(
    client: Client, runs: Executions, final: dict[int, dict[str, Any]], tally: Tally, effects: Redis
) -> Observed:
    """What the audit needs: every execution's log and variables, and the side effects."""
    logs: dict[int, list[dict[str, Any]]] = {}
    variables: dict[int, dict[str, Any]] = {}
    gate = asyncio.Semaphore(16)

    async def read(execution_id: int) -> None:
        base = f"/executions/processes/{execution_id}"
        async with gate:
            status, data, _ = await client.call("GET", base + "/log")
            logs[execution_id] = data["items"] if status == 200 else []
            status, data, _ = await client.call("GET", base + "/state")
            variables[execution_id] = data["memory"]["variables"] if status == 200 and data.get("memory") else {}

    await asyncio.gather(*(read(i) for i in runs.ids))
    lines: list[bytes | str] = []
    total = await effects.llen(EFFECTS_KEY)
    for first in range(0, total, 20_000):
        lines += await effects.lrange(EFFECTS_KEY, first, first + 19_999)
    return Observed(
        statuses={i: data["status"] for i, data in final.items()},
        logs=logs,
        variables=variables,
        limits=dict(runs.limits),
        effects=parse_effects(lines),
        acknowledged=list(tally.acknowledged),
        notes={i: list(keys) for i, keys in runs.notes.items()},
        cancellable=set(runs.cancellable),
        starts=dict(runs.starts),
        gone_at=dict(tally.gone_at),
    )


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    rounds = max(int(args.seconds * 1000 / ROUND_MS) + 20, 20)
    workdir = Path(tempfile.mkdtemp(prefix="procengine-chaos-"))
    redis: RedisServer | LocalSentinel
    effects_server = RedisServer(workdir / "effects")  # the tasks' side effects: not the engine's Redis
    effects_server.start()
    if args.mode == "failover":
        redis = LocalSentinel(workdir / "redis")
        await asyncio.to_thread(redis.start)
        ctx = Context(redis.url, 0, workdir, quick=False, budget_s=args.seconds * 4)
    else:
        redis = RedisServer(workdir / "redis")
        redis.start()
        ctx = Context(redis.url, redis.pid or 0, workdir, quick=False, budget_s=args.seconds * 4)
    nodes = Nodes(ctx, args.nodes, args.grace_ms, args.ttl_ms, args.durability, effects_server.url)
    tally = Tally()
    runs = Executions()
    effects = Redis.from_url(effects_server.url)
    try:
        await nodes.start_all()
        async with aiohttp.ClientSession() as session:
            client = Client(session, nodes, tally, retry_for_s=args.retry_for_s)
            status, data, _ = await client.call("POST", "/processes", json_body=chaos_definition())
            assert status in (200, 201), data
            for i in range(args.executions):
                await start_one(client, runs, f"chaos-first-{i}", rounds, rng)
            assert len(runs.ids) == args.executions, runs.unstarted
            print(
                f"chaos: {args.nodes} nodes, {len(runs.ids)} executions of {rounds} rounds, {args.mode}, "
                f"{args.seconds:g} s, durability {args.durability}"
            )
            stop = asyncio.Event()
            started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                for _ in range(args.clients):
                    group.create_task(pester(client, runs, stop, random.Random(rng.random())))
                group.create_task(starter(client, runs, stop, random.Random(rng.random()), args.seconds))
                if isinstance(redis, LocalSentinel):
                    group.create_task(fail_over(redis, tally, stop, random.Random(rng.random())))
                else:
                    group.create_task(break_nodes(nodes, tally, args.mode, stop, random.Random(rng.random())))
                await asyncio.sleep(args.seconds)
                stop.set()
            chaos_s = time.monotonic() - started
            # time for a whole loop twice over (the loop started before the chaos, slowed by it), and a minute
            final, last_seen = await drive_to_the_end(client, runs, rounds * ROUND_MS / 1000 * 2 + 60, rng, effects)
            seen = await observe(client, runs, final, tally, effects)
            seen.last_seen = last_seen
            result = audit(seen)
    finally:
        await effects.aclose()
        nodes.stop_all()
        stop_all_children()
        redis.stop()
        effects_server.stop()
    return report(args, tally, runs, result, chaos_s)


def report(args: argparse.Namespace, tally: Tally, runs: Executions, result: Audit, chaos_s: float) -> int:
    standstill = max(result.standstills, default=0.0)
    answered = sum(tally.requests.values())
    outcomes = "{completed} / {cancelled} / {failed}".format_map(result.outcomes)
    retried = sum(count for name, count in tally.requests.items() if name.endswith(" 503"))
    target = f"< {args.max_standstill_s:g}" if args.max_standstill_s else ""
    problems = result.problems
    figures = result.figures
    rows = [
        ("executions (started during the faults)", f"{len(runs.ids)}", f"{len(runs.ids) - args.executions}"),
        ("executions completed / cancelled / failed", outcomes, f"{len(runs.cancellable)} could be cancelled"),
        ("executions not completed (failed, lost, ...)", str(len(problems["not completed"])), "must be 0"),
        ("elements completed more often than they ran", str(len(problems["completed twice"])), "must be 0"),
        ("acknowledged transitions missing from the log", str(len(problems["missing"])), "must be 0"),
        ("signals not taken exactly once", str(len(problems["signal not once"])), "must be 0"),
        ("elements moving while paused", str(len(problems["moved while paused"])), "must be 0"),
        ("side effects the log does not account for", str(len(problems["side effects"])), "must be 0"),
        ("concurrent runs of one attempt", str(len(problems["concurrent run"])), "must be 0"),
        ("start keys answered with two executions", str(len(problems["duplicate start"])), "must be 0"),
        ("requests answered 5xx other than 503", str(len(tally.server_errors)), "must be 0"),
        ("requests whose 503s retries did not get past", str(len(tally.unanswered)), "must be 0"),
        ("longest standstill of an execution (s)", f"{standstill:.2f}", target),
        ("side effects (task runs) / re-runs", f"{figures['side effects']} / {figures['re-runs']}", ""),
        ("note signals sent / acknowledged keys / taken",
         f"{runs.notes_sent} / {figures['signals sent (acknowledged keys)']} / {figures['signals taken (log)']}",
         "taken: every keyed signal-received"),
        ("pauses checked (no element moved)", str(figures["pauses checked"]), ""),
        ("requests answered (incl. retried 503s)", str(answered), f"{retried} were 503"),
        ("acknowledged transitions and signals", str(len(tally.acknowledged)), ""),
        (
            "Redis masters killed / back as replicas" if tally.failovers else "nodes killed / restarted",
            f"{tally.kills} / {tally.restarts}",
            f"in {chaos_s:.0f} s of chaos",
        ),
    ]  # fmt: skip
    if tally.failovers:
        rows.append(("failover: kill to new master (s), longest", f"{max(tally.failovers):.2f}", ""))
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>12}  {note}")
    for kind, items in [*problems.items(), ("5xx", tally.server_errors), ("unanswered", tally.unanswered)]:
        for item in items[:10]:
            print(f"  {kind}: {item}")
    failed = (
        result.failed or tally.server_errors or tally.unanswered
        or (args.max_standstill_s and standstill >= args.max_standstill_s)
    )  # fmt: skip
    print("chaos: FAIL" if failed else "chaos: PASS")
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("kill", "rolling", "failover"), default="kill")
    parser.add_argument("--durability", choices=("local", "replicated"), default="local", help="the nodes' setting")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long nodes are broken (default 120)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients sending requests")
    parser.add_argument("--grace-ms", type=int, default=300, help="the nodes' pause grace (and drain time)")
    parser.add_argument("--ttl-ms", type=int, default=1000, help="the nodes' heartbeat TTL")
    parser.add_argument("--retry-for-s", type=float, default=30.0, help="how long a client retries 503s")
    parser.add_argument("--max-standstill-s", type=float, default=0.0, help="fail if a standstill is this long")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
