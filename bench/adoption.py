"""Time to adopt orphaned executions after a node dies, per 1,000 executions.

Node A (`procengine serve`, `--node-ttl-ms 1000`, heartbeat every 250 ms) starts 1,000 running executions
(parked on a wait-signal, so none is mid-step), and is killed with SIGKILL. Node B, started beforehand
(so that its interpreter start-up is not counted) with `PROCENGINE_RECONCILE_INTERVAL_MS=100`, adopts them.

- the TTL wait: from the kill until A's heartbeat key is gone (polled every 5 ms);
- the adoption time: from then until every one of the 1,000 executions names B as its owner (HMGET owner,
  polled every 20 ms). It includes up to one reconcile interval (100 ms) before B's next pass notices.

Then the restart as an operator sees it (context): B is killed with SIGKILL and a new process C is started at
once; from the kill until C owns all 1,000 (the TTL wait and C's start-up overlap).

Then a graceful leave: node D is started, C gets SIGTERM (it drains: checkpoints, deletes its heartbeat and
publishes on `<p>:nodes`); from the SIGTERM until D owns all 1,000, beside the kill -9 figure (TTL wait +
adoption).

Baseline: the Redis work adoption cannot avoid, done from one redis-py client in pipelines of 100: read each
execution back (the three HGETALLs the engine's load does) and run takeover.lua on it with the arguments
ExecutionStore.takeover builds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import Context, Figure, Serve, parked_definition, ratio
from bench.loadgen import close_all, pool, register, start_executions
from procengine.runtime.clock import iso
from procengine.settings import Settings
from procengine.store.codec import encode
from procengine.store.keys import Keys
from procengine.store.scripts import Scripts

NODE_TTL_MS = 1000
RECONCILE_MS = 100
ENV = {"PROCENGINE_NODE_HEARTBEAT_MS": "250", "PROCENGINE_RECONCILE_INTERVAL_MS": str(RECONCILE_MS)}


async def _owners(redis: Any, keys: Keys, ids: list[int]) -> list[str]:
    async with redis.pipeline(transaction=False) as pipe:
        for execution_id in ids:
            pipe.hget(keys.execution(execution_id).execution, "owner")
        return [(owner or b"").decode() for owner in await pipe.execute()]


async def _until_owned(redis: Any, keys: Keys, ids: list[int], gone: set[str], since: float,
                       deadline: float) -> tuple[float, str, list[tuple[float, int]]]:  # fmt: skip
    """Poll until no execution is owned by a node in `gone` (or by nobody); (when, new owner, progress)."""
    progress: list[tuple[float, int]] = []
    while True:
        owners = await _owners(redis, keys, ids)
        adopted = sum(1 for o in owners if o not in gone and o != "")
        progress.append((time.perf_counter() - since, adopted))
        if adopted == len(ids):
            return time.perf_counter(), owners[0], progress
        if time.perf_counter() > deadline:
            raise TimeoutError(f"adoption: {adopted} of {len(ids)} adopted after {deadline - since:.0f}s")
        await asyncio.sleep(0.02)


async def _gone(redis: Any, key: str) -> float:
    while await redis.exists(key):  # noqa: ASYNC110 - polling Redis, not a local event
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def run(ctx: Context) -> list[Figure]:
    await ctx.flush()
    count = ctx.n(1000, 200)
    prefix = "adoption"
    keys = Keys(prefix)
    redis = ctx.client()
    nodes: list[Serve] = []

    def node(name: str) -> Serve:
        serve = Serve(ctx, f"adoption-{name}", prefix=prefix, node_ttl_ms=NODE_TTL_MS, env=ENV)
        nodes.append(serve)
        return serve

    try:
        # 1. A owns 1,000 running executions; B is up; A is killed; B adopts.
        node_a = node("a").start()
        clients = await pool(node_a.url, 16)
        try:
            process_id = await register(clients[0], parked_definition("parked"))
            ids = await start_executions(clients, process_id, count)
        finally:
            await close_all(clients)
        owners = set(await _owners(redis, keys, ids))
        if len(owners) != 1 or "" in owners:
            raise RuntimeError(f"adoption: node A does not own every execution: {owners}")
        a_id = owners.pop()
        node_b = node("b").start()
        await asyncio.sleep(0.5)  # B's first reconcile passes see A alive and leave everything alone
        if set(await _owners(redis, keys, ids)) != {a_id}:
            raise RuntimeError("adoption: B took executions while A was alive")
        killed = time.perf_counter()
        node_a.kill()
        expired = await _gone(redis, keys.node(a_id))
        done, b_id, progress = await _until_owned(redis, keys, ids, {a_id}, expired, expired + max(ctx.left() / 2, 10))

        # 2. A restart: B is killed and a new process C is started at once; C adopts once B's heartbeat expires.
        restarted = time.perf_counter()
        node_b.kill()
        node_c = node("c")
        starting = asyncio.create_task(asyncio.to_thread(node_c.start))
        b_expired = await _gone(redis, keys.node(b_id))
        r_done, c_id, r_progress = await _until_owned(
            redis, keys, ids, {a_id, b_id}, restarted, restarted + max(ctx.left() - 5, 10)
        )
        await starting
        ready = _ready_at(node_c)

        # 3. A graceful leave: D is up, C gets SIGTERM, drains and says so; D adopts without waiting for a TTL.
        node_d = node("d").start()
        await asyncio.sleep(0.5)
        terminated = time.perf_counter()
        stopping = asyncio.create_task(asyncio.to_thread(node_c.stop))
        t_done, d_id, t_progress = await _until_owned(
            redis, keys, ids, {a_id, b_id, c_id}, terminated, terminated + max(ctx.left() - 5, 10)
        )
        await stopping
        baseline_s = await _baseline(redis, keys, ids, d_id)
        node_d.stop()
    finally:
        for serve in nodes:
            serve.kill()
        await redis.aclose()
    adoption_s = done - expired
    first = next((t for t, n in progress if n > 0), adoption_s)
    per_1000 = adoption_s * 1000 / count
    floor_per_1000 = baseline_s * 1000 / count
    restart_s = r_done - restarted
    drain_per_1000 = (t_done - terminated) * 1000 / count
    return [
        Figure(
            name="adoption of orphaned executions, per 1,000",
            value=per_1000,
            unit="s",
            baseline=floor_per_1000,
            baseline_label="Redis floor: load + takeover.lua, pipelined",
            ratio=ratio(per_1000, floor_per_1000),
            target="(no target in the issue)",
            passed=None,
            notes=(
                f"{count} executions; kill -9 -> heartbeat gone {expired - killed:.2f}s (TTL {NODE_TTL_MS} ms), "
                f"then first adopted after {first:.2f}s, all after {adoption_s:.2f}s by a node already up "
                f"(reconcile every {RECONCILE_MS} ms)"
            ),
            details={
                "ttl_wait_s": expired - killed,
                "adoption_s": adoption_s,
                "first_adopted_s": first,
                "progress": progress[:: max(1, len(progress) // 50)],
            },
        ),
        Figure(
            name=f"restart: kill -9 to all {count:,} adopted by a new process",
            value=restart_s,
            unit="s",
            baseline=baseline_s,
            baseline_label=f"the same floor for {count:,}",
            ratio=ratio(restart_s, baseline_s),
            target="(context)",
            passed=None,
            notes=(
                f"{count} executions; the old node's heartbeat gone after {b_expired - restarted:.2f}s, the new "
                f"process serving after {ready - restarted:.2f}s, all adopted after {restart_s:.2f}s"
            ),
            details={"progress": r_progress[:: max(1, len(r_progress) // 50)]},
        ),
        Figure(
            name="adoption after SIGTERM (drain), per 1,000",
            value=drain_per_1000,
            unit="s",
            baseline=per_1000 + (expired - killed) * 1000 / count,
            baseline_label="after kill -9: heartbeat TTL wait + adoption, per 1,000",
            ratio=ratio(drain_per_1000, per_1000 + (expired - killed) * 1000 / count),
            target="(context: a rolling restart's standstill)",
            passed=None,
            notes=(
                f"{count} executions; from SIGTERM until another node already up owns all: the drain "
                f"checkpoints each, says so on <p>:nodes, the other adopts at once (no TTL wait)"
            ),
            details={"progress": t_progress[:: max(1, len(t_progress) // 50)]},
        ),
    ]


def _ready_at(serve: Serve) -> float:
    """When `serve` printed its address (perf_counter clock), from the file's modification time."""
    age = time.time() - serve.stdout_path.stat().st_mtime
    return time.perf_counter() - age


async def _baseline(redis: Any, keys: Keys, ids: list[int], owner: str) -> float:
    """Read back and take over every execution from `owner`, as adoption must; seconds."""
    sha = await redis.script_load(Scripts.register(redis).takeover.script)
    log_maxlen = Settings().log_maxlen
    started = time.perf_counter()
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        async with redis.pipeline(transaction=False) as pipe:
            for execution_id in chunk:
                k = keys.execution(execution_id)
                pipe.hgetall(k.execution)
                pipe.hgetall(k.state)
                pipe.hgetall(k.threads)
            loaded = await pipe.execute()
        now = int(time.time() * 1000)
        async with redis.pipeline(transaction=False) as pipe:
            for i, execution_id in enumerate(chunk):
                k = keys.execution(execution_id)
                epoch = loaded[3 * i][b"epoch"].decode()
                detail = encode({"from": owner, "to": "baseline", "by": "system"})
                args = ["baseline", owner, epoch, log_maxlen, iso(now), "adopted", detail, str(execution_id)]
                pipe.evalsha(sha, 4, k.execution, k.log, keys.owned(owner), keys.owned("baseline"), *args)
            replies = await pipe.execute()
        if any(reply[0] != b"OK" for reply in replies):
            raise RuntimeError(f"adoption baseline: takeover refused: {replies[:3]}")
    return time.perf_counter() - started
