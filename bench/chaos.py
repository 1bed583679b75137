"""Chaos: several engine nodes on one Redis, executions running, clients asking any node anything, and nodes
killed (kill -9) and restarted, or restarted one by one (SIGTERM, a rolling restart). At the end every execution
is driven to its end and the run is audited:

- executions completed, cancelled, failed, lost (not final when driven to the end; must be 0);
- elements completed more often than they ran (must be 0): the loop's counter must end at its round count and
  each element must complete exactly as often as the loop says;
- requests answered 5xx other than 503 (must be 0), and 503s that retries did not get past (must be 0);
- acknowledged transitions (a 200 to pause, resume or cancel; a 202 to a signal) missing from the log (must be 0);
- each execution's longest standstill while running and not paused (a figure; under 2 s is the target of a
  rolling restart).

    python -m bench.chaos                              # 3 nodes, 300 executions, kill -9 every few s, 120 s
    python -m bench.chaos --mode rolling --seconds 40  # a rolling restart of the 3 nodes, SIGTERM each in turn
    python -m bench.chaos --mode failover --durability replicated --executions 100 --seconds 30

failover: Redis is a master with a replica under three Sentinels (redis_topology.LocalSentinel) and the nodes
stay up; every few seconds the master is killed (kill -9), the Sentinels promote the replica, and the old
master comes back as the new one's replica. With `--durability replicated` the audit must find nothing; with
`local` it may find what asynchronous replication lost (on loopback the replica is rarely behind, so usually
nothing).

Exit code 0 when every count that must be 0 is 0 (and, with --max-standstill-s, the standstill is under it).
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

from bench.common import BASE, Context, Serve, stop_all_children
from procengine.clock import parse_iso
from procengine.redis_server import RedisServer
from procengine.redis_topology import LocalSentinel

ROUND_MS = 150
"""A loop round of the chaos process takes about this: a 50 ms task and a 100 ms delay."""
FINAL = ("completed", "failed", "cancelled")
NODE_ENV = {
    "PROCENGINE_NODE_HEARTBEAT_MS": "200",
    "PROCENGINE_RECONCILE_INTERVAL_MS": "250",
    "PROCENGINE_PASSIVATE_AFTER_MS": "2000",
}


def chaos_definition(rounds: int) -> dict[str, Any]:
    """A loop of a task, a delay and a counter (`rounds` times), then a wait for the signal `go` and a last task;
    beside it a thread with a delay and a task. Every element but the loop's completes once."""
    return {
        "key": "chaos",
        "threads": [
            {
                "key": "main",
                "elements": [
                    {"key": "work", "type": "task", "handler": "sleep", "input": {"ms": "50"}, "next": "nap"},
                    {"key": "nap", "type": "delay", "durationMs": 100, "next": "count"},
                    {"key": "count", "type": "set-variable", "set": {"n": "n + 1"}, "next": "more"},
                    {"key": "more", "type": "if-condition", "condition": f"n < {rounds}", "then": "work", "else": "go"},
                    {"key": "go", "type": "wait-signal", "signal": "go", "into": "got", "next": "last"},
                    {"key": "last", "type": "task", "handler": "echo", "input": {"n": "n"}, "next": "done"},
                    {"key": "done", "type": "end"},
                ],
            },
            {
                "key": "side",
                "elements": [
                    {"key": "side_nap", "type": "delay", "durationMs": 300, "next": "side_work"},
                    {"key": "side_work", "type": "task", "handler": "sleep", "input": {"ms": "80"}, "next": "side_end"},
                    {"key": "side_end", "type": "end"},
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


class Nodes:
    """The engine nodes: their current addresses (a restarted node listens on a new port)."""

    def __init__(self, ctx: Context, count: int, grace_ms: int, ttl_ms: int, durability: str) -> None:
        env = {**NODE_ENV, "PROCENGINE_DURABILITY": durability}
        self.servers = [
            Serve(
                ctx, f"node{i}", prefix="chaos", pause_grace_ms=grace_ms, node_ttl_ms=ttl_ms, env=env, log_level="INFO"
            )
            for i in range(count)
        ]
        self.up: list[bool] = [False] * count

    async def start_all(self) -> None:
        await asyncio.gather(*(self.start(i) for i in range(len(self.servers))))

    async def start(self, i: int) -> None:
        await asyncio.to_thread(self.servers[i].start)
        self.up[i] = True

    def urls(self) -> list[str]:
        return [server.url for server, up in zip(self.servers, self.up, strict=True) if up]

    async def kill(self, i: int) -> None:
        self.up[i] = False
        await asyncio.to_thread(self.servers[i].kill)

    async def terminate(self, i: int) -> int:
        """SIGTERM and wait: the node drains; returns its exit code."""
        self.up[i] = False
        server = self.servers[i]
        await asyncio.to_thread(server.stop)
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
        """(status, data or error, request id); a 5xx other than 503 is recorded, a never-answered one too."""
        request_id = f"chaos-{next(self._ids)}"
        give_up = time.monotonic() + self.retry_for_s
        label = f"{method} {path.split('/')[-1] if path.count('/') > 3 else path}"
        last = "no node up"
        while time.monotonic() < give_up:
            urls = self.nodes.urls()
            if not urls:
                await asyncio.sleep(0.05)
                continue
            url = random.choice(urls)
            try:
                async with self.session.request(
                    method,
                    url + BASE + path,
                    json=json_body,
                    headers={"X-Request-ID": request_id, **(headers or {})},
                    timeout=aiohttp.ClientTimeout(total=30),
                ) as response:
                    body = await response.json(content_type=None)
                    status = response.status
                    retry_after = float(response.headers.get("Retry-After", "0.2"))
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:  # a node killed under us
                last = f"{type(exc).__name__}"
                await asyncio.sleep(0.05)
                continue
            self.tally.requests[f"{label} {status}"] += 1
            if status == 503:
                last = f"503 {body['error']['message']}"
                await asyncio.sleep(min(retry_after, 0.5))
                continue
            if status >= 500:
                self.tally.server_errors.append(f"{method} {path}: {status} {body}")
            return status, body.get("data") if body.get("success") else body.get("error"), request_id
        self.tally.unanswered.append(f"{method} {path}: {last}")
        return 0, None, request_id


async def pester(client: Client, ids: list[int], stop: asyncio.Event, rng: random.Random) -> None:
    """One client: random requests for random executions until `stop`."""
    tally = client.tally
    while not stop.is_set():
        execution_id = rng.choice(ids)
        base = f"/executions/processes/{execution_id}"
        roll = rng.random()
        if roll < 0.35:
            await client.call("GET", base + "/status")
        elif roll < 0.45:
            await client.call("GET", base + "/log")
        elif roll < 0.65:
            status, _, rid = await client.call("POST", base + "/pause", json_body={"reason": "chaos"})
            if status == 200:
                tally.acknowledged.append((execution_id, "paused", rid))
            if status in (200, 409):  # a 409 may be our own pause, applied before a lost answer: resume it too
                await asyncio.sleep(rng.uniform(0.1, 0.6))
                status, _, rid = await client.call("POST", base + "/resume")
                if status == 200:
                    tally.acknowledged.append((execution_id, "resumed", rid))
        elif roll < 0.85:
            key = f"sig-{execution_id}-{rng.getrandbits(40):x}"
            status, _, _ = await client.call(
                "POST", base + "/signals/go", json_body={"from": "chaos"}, headers={"Idempotency-Key": key}
            )
            if status == 202:
                tally.acknowledged.append((execution_id, "signal-received", key))
        elif roll < 0.87:
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
            await nodes.kill(i)
            tally.kills += 1
            await asyncio.sleep(rng.uniform(0.2, 1.0))
        else:
            code = await nodes.terminate(i)
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


async def drive_to_the_end(client: Client, ids: list[int], within_s: float) -> dict[int, dict[str, Any]]:
    """Until every execution is final (or `within_s` is up), once a second: resume what is paused, and signal
    `go` once to each running execution (it waits in the execution's memory until the loop reaches `go`)."""
    final: dict[int, dict[str, Any]] = {}
    signalled: set[int] = set()
    gate = asyncio.Semaphore(16)

    async def drive(execution_id: int) -> None:
        base = f"/executions/processes/{execution_id}"
        async with gate:
            status, data, _ = await client.call("GET", base + "/status")
            if status != 200:
                return
            if data["status"] in FINAL:
                final[execution_id] = data
            elif data["status"] == "paused":
                await client.call("POST", base + "/resume")
            elif execution_id not in signalled:
                key = f"end-{execution_id}"
                status, _, _ = await client.call(
                    "POST", base + "/signals/go", json_body={}, headers={"Idempotency-Key": key}
                )
                if status == 202:
                    signalled.add(execution_id)

    deadline = time.monotonic() + within_s
    while len(final) < len(ids) and time.monotonic() < deadline:
        await asyncio.gather(*(drive(i) for i in ids if i not in final))
        await asyncio.sleep(1.0)
    return final


@dataclass
class Audit:
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: list[int] = field(default_factory=list)
    completed_twice: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    standstills: list[float] = field(default_factory=list)


async def audit(client: Client, ids: list[int], final: dict[int, dict[str, Any]], rounds: int, tally: Tally) -> Audit:
    result = Audit()
    logs: dict[int, list[dict[str, Any]]] = {}
    for execution_id in ids:
        status, data, _ = await client.call("GET", f"/executions/processes/{execution_id}/log")
        logs[execution_id] = data["items"] if status == 200 else []
        outcome = final[execution_id]["status"] if execution_id in final else "lost"
        result.outcomes[outcome] += 1
        if outcome == "lost":
            result.lost.append(execution_id)
        result.completed_twice += _completed_twice(execution_id, logs[execution_id], rounds, outcome)
        result.standstills.append(_longest_standstill(logs[execution_id]))
    for execution_id, event, ref in tally.acknowledged:
        log = logs[execution_id]
        key = "idempotencyKey" if event == "signal-received" else "requestId"
        if not any(e["event"] == event and e["detail"].get(key) == ref for e in log):
            result.missing.append(f"{execution_id} {event} {ref}")
    return result


def _completed_twice(execution_id: int, log: list[dict[str, Any]], rounds: int, outcome: str) -> list[str]:
    """Elements that completed more often than they can have run: the loop's at most `rounds` times (exactly, once
    the execution completed), every other element at most once."""
    done = Counter(e["elementKey"] for e in log if e["event"] == "element-completed")
    problems = []
    for key, times in done.items():
        most = rounds if key in ("work", "nap", "count", "more") else 1
        if times > most:
            problems.append(f"{execution_id}: {key} completed {times} times (at most {most})")
    if outcome == "completed" and done["count"] != rounds:
        problems.append(f"{execution_id}: the loop's counter completed {done['count']} times, not {rounds}")
    return problems


def _longest_standstill(log: list[dict[str, Any]]) -> float:
    """The longest time, in seconds, between two entries of the main thread's loop while the execution was
    running (not paused), before it reached its wait."""
    longest = 0.0
    last: float | None = None
    paused = False
    for entry in log:
        at = parse_iso(entry["at"]) / 1000
        event, key = entry["event"], entry.get("elementKey")
        if event == "paused":
            paused, last = True, None
        elif event == "resumed":
            paused, last = False, at
        elif event in ("element-started", "element-completed") and key in ("work", "nap", "count", "more"):
            if last is not None and not paused:
                longest = max(longest, at - last)
            last = at
        elif event == "element-completed" and key == "go":
            break  # from here the execution waits for the client's signal
        elif event in FINAL:
            break
    return longest


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    rounds = max(int(args.seconds * 1000 / ROUND_MS) + 20, 20)
    workdir = Path(tempfile.mkdtemp(prefix="procengine-chaos-"))
    redis: RedisServer | LocalSentinel
    if args.mode == "failover":
        redis = LocalSentinel(workdir / "redis")
        await asyncio.to_thread(redis.start)
        ctx = Context(redis.url, 0, workdir, quick=False, budget_s=args.seconds * 4)
    else:
        redis = RedisServer(workdir / "redis")
        redis.start()
        ctx = Context(redis.url, redis.pid or 0, workdir, quick=False, budget_s=args.seconds * 4)
    nodes = Nodes(ctx, args.nodes, grace_ms=args.grace_ms, ttl_ms=args.ttl_ms, durability=args.durability)
    tally = Tally()
    try:
        await nodes.start_all()
        async with aiohttp.ClientSession() as session:
            client = Client(session, nodes, tally, retry_for_s=args.retry_for_s)
            status, data, _ = await client.call("POST", "/processes", json_body=chaos_definition(rounds))
            assert status in (200, 201), data
            ids = []
            for _ in range(args.executions):
                status, data, _ = await client.call(
                    "POST", "/executions/processes", json_body={"processKey": "chaos", "variables": {"n": 0}}
                )
                assert status == 201, data
                ids.append(data["executionID"])
            print(
                f"chaos: {args.nodes} nodes, {len(ids)} executions of {rounds} rounds, {args.mode}, "
                f"{args.seconds:g} s, durability {args.durability}"
            )
            stop = asyncio.Event()
            started = time.monotonic()
            async with asyncio.TaskGroup() as group:
                for _ in range(args.clients):
                    group.create_task(pester(client, ids, stop, random.Random(rng.random())))
                if isinstance(redis, LocalSentinel):
                    group.create_task(fail_over(redis, tally, stop, random.Random(rng.random())))
                else:
                    group.create_task(break_nodes(nodes, tally, args.mode, stop, random.Random(rng.random())))
                await asyncio.sleep(args.seconds)
                stop.set()
            chaos_s = time.monotonic() - started
            # time for a whole loop twice over (the loop started before the chaos, slowed by it), and a minute
            final = await drive_to_the_end(client, ids, within_s=rounds * ROUND_MS / 1000 * 2 + 60)
            result = await audit(client, ids, final, rounds, tally)
    finally:
        nodes.stop_all()
        stop_all_children()
        redis.stop()
    return report(args, tally, result, chaos_s)


def report(args: argparse.Namespace, tally: Tally, result: Audit, chaos_s: float) -> int:
    standstill = max(result.standstills, default=0.0)
    answered = sum(tally.requests.values())
    outcomes = "{completed} / {cancelled} / {failed}".format_map(result.outcomes)
    retried = sum(count for name, count in tally.requests.items() if name.endswith(" 503"))
    target = f"< {args.max_standstill_s:g}" if args.max_standstill_s else ""
    rows = [
        ("executions completed / cancelled / failed", outcomes, ""),
        ("executions lost (not final at the end)", str(len(result.lost)), "must be 0"),
        ("elements completed more often than they ran", str(len(result.completed_twice)), "must be 0"),
        ("requests answered 5xx other than 503", str(len(tally.server_errors)), "must be 0"),
        ("requests whose 503s retries did not get past", str(len(tally.unanswered)), "must be 0"),
        ("acknowledged transitions missing from the log", str(len(result.missing)), "must be 0"),
        ("longest standstill of an execution (s)", f"{standstill:.2f}", target),
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
    for kind, items in (
        ("lost", [str(i) for i in result.lost]),
        ("completed twice", result.completed_twice),
        ("5xx", tally.server_errors),
        ("unanswered", tally.unanswered),
        ("missing", result.missing),
    ):
        for item in items[:10]:
            print(f"  {kind}: {item}")
    failed = (
        result.lost or result.completed_twice or tally.server_errors or tally.unanswered or result.missing
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
