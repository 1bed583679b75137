"""What a Redis crash (kill -9) or a clean restart loses, under load, with `appendfsync always` and `everysec`.

One engine node and its front door in this process, on a redis-server of the test's own. Clients start
executions of the chaos loop (bench/chaos.py) all along, each with an `idempotencyKey`; Redis is killed (or
restarted cleanly) in the middle and comes back 0.5 s later. The test records what Redis acknowledged: every
201 to a start, and every checkpoint `commit.lua` answered OK (with the log entries it wrote). When every
execution has ended it counts what is gone:

- starts: an acknowledged execution whose hash is missing;
- idempotency keys: a repeated start with the key that does not answer 200 with the same execution;
- checkpoints and log entries: an acknowledged checkpoint whose log entries are not in the log;
- elements completed twice (bench.chaos's audit), and executions not ended (stuck `running`).

The figures go to the loss table of docs/operations.md: `pytest tests/e2e/test_redis_loss.py -s` prints them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from procengine.http.app import create_app
from procengine.node.node import Node
from procengine.settings import Settings
from procengine.store.connection import connect
from procengine.store.embedded import RedisServer
from procengine.store.executions import Commit, ExecutionStore, Outcome, WriteResult
from procengine.tasks import builtin_handlers
from tests.support.api import Api
from tests.support.loss_process import completed_twice, loss_definition
from tests.support.redis_servers import RedisServerFactory

ROUNDS = 6
LOAD_BEFORE_S = 1.5
DOWN_S = 0.5
EVERYSEC_BOUND_S = 2.0
"""With `everysec` Redis fsyncs once a second, and postpones a write for up to 2 s while an fsync is slow: what a
crash of the machine can lose was acknowledged at most this long before it."""


@dataclass
class Acknowledged:
    """What Redis said it had, each with the monotonic time of the answer."""

    starts: dict[int, tuple[str, float]] = field(default_factory=dict)
    """executionID -> (idempotencyKey, when)."""
    checkpoints: list[tuple[int, list[tuple[str, str, str]], float]] = field(default_factory=list)
    """(executionID, log entries as (at, event, elementKey), when)."""


@dataclass
class Loss:
    starts: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    checkpoints: list[float] = field(default_factory=list)
    """When each lost checkpoint was acknowledged (monotonic)."""
    entries: int = 0
    completed_twice: list[str] = field(default_factory=list)
    not_ended: list[int] = field(default_factory=list)


def _record_checkpoints(store: ExecutionStore, acknowledged: Acknowledged) -> None:
    """Wrap the store's commit so that every write Redis answered OK is noted with its log entries."""
    commit = store.commit

    async def recorded(execution_id: int, change: Commit, **kwargs: Any) -> WriteResult:
        result = await commit(execution_id, change, **kwargs)
        if result.outcome is Outcome.OK and change.log:
            entries = [(str(e.at_ms), e.event, e.element_key or "") for e in change.log]
            acknowledged.checkpoints.append((execution_id, entries, time.monotonic()))
        return result

    store.commit = recorded  # type: ignore[method-assign]


async def _start_all_along(api: Api, acknowledged: Acknowledged, keys: Iterator[int], stop: asyncio.Event) -> None:
    """Start executions one after another until `stop`, each with its own key, and give each its `go` signal."""
    while not stop.is_set():
        key = f"load-{next(keys)}"
        body = {"processKey": "chaos", "variables": {"n": 0}, "idempotencyKey": key}
        status, answer = await api.call("POST", "/executions/processes", json=body)
        if status == 201:
            execution_id = answer["data"]["executionID"]
            acknowledged.starts[execution_id] = (key, time.monotonic())
            await api.call("POST", f"/executions/processes/{execution_id}/signals/go", json={})
        else:
            assert status == 503, answer  # Redis is down: the start is not acknowledged
            await asyncio.sleep(0.05)


async def _drive_to_the_end(api: Api, ids: list[int], within_s: float) -> dict[int, str]:
    """Every execution's final status; a lost `go` signal (its 202 lost with Redis) is sent again."""
    final: dict[int, str] = {}
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and len(final) < len(ids):
        for execution_id in ids:
            if execution_id in final:
                continue
            status, answer = await api.call("GET", f"/executions/processes/{execution_id}/status")
            if status != 200:
                continue
            if answer["data"]["status"] in ("completed", "failed", "cancelled"):
                final[execution_id] = answer["data"]["status"]
            else:
                go = f"/executions/processes/{execution_id}/signals/go"
                await api.call("POST", go, json={}, headers={"Idempotency-Key": "go"})
        await asyncio.sleep(0.25)
    return final


async def _audit(api: Api, raw: Redis, prefix: str, acknowledged: Acknowledged, final: dict[int, str]) -> Loss:
    loss = Loss()
    for execution_id, (key, _) in acknowledged.starts.items():
        if not await raw.exists(f"{prefix}:exec:{{{execution_id}}}"):
            loss.starts.append(execution_id)
        body = {"processKey": "chaos", "variables": {"n": 0}, "idempotencyKey": key}
        status, answer = await api.call("POST", "/executions/processes", json=body)
        if status != 200 or answer["data"]["executionID"] != execution_id:
            loss.keys.append(key)
    logs: dict[int, set[tuple[str, str, str]]] = {}
    for execution_id in {c[0] for c in acknowledged.checkpoints} | set(acknowledged.starts):
        entries = await raw.xrange(f"{prefix}:exec:{{{execution_id}}}:log")
        logs[execution_id] = {(f[b"at"].decode(), f[b"event"].decode(), f[b"elementKey"].decode()) for _, f in entries}
    for execution_id, entries, when in acknowledged.checkpoints:
        missing = [e for e in entries if e not in logs[execution_id]]
        if missing:
            loss.checkpoints.append(when)
            loss.entries += len(missing)
    for execution_id in acknowledged.starts:
        if execution_id not in final:
            loss.not_ended.append(execution_id)
            continue
        status, answer = await api.call("GET", f"/executions/processes/{execution_id}/log")
        assert status == 200, answer
        twice = completed_twice(execution_id, answer["data"]["items"], ROUNDS, final[execution_id])
        if twice:  # with the log, to tell which writes made it
            entries = [(e["at"][11:], e["event"], e["elementKey"], e["detail"]) for e in answer["data"]["items"]]
            loss.completed_twice += [*twice, *map(str, entries)]
    return loss


async def _run(
    server: RedisServer, settings: Settings, fsync: str, crash: Callable[[RedisServer], Awaitable[None]]
) -> tuple[Acknowledged, Loss, float]:
    """Load, crash, come back, drive to the end, audit: (acknowledged, lost, the moment of the crash)."""
    configured = settings.model_copy(update={"redis_url": server.url, "redis_timeout_s": 1.0, "redis_retries": 2})
    redis = connect(server.url, timeout_s=configured.redis_timeout_s, retries=configured.redis_retries)
    raw = connect(server.url, timeout_s=1.0, retries=2)
    acknowledged = Acknowledged()
    delayed = 0
    try:
        async with (
            Node(redis, configured, builtin_handlers()) as engine,
            TestClient(TestServer(create_app(engine, configured))) as client,
        ):
            _record_checkpoints(engine.store, acknowledged)
            api = Api(client, None)
            await api.ok("POST", "/processes", expect=201, json=loss_definition(ROUNDS))
            stop = asyncio.Event()
            keys = itertools.count()
            starters = [asyncio.create_task(_start_all_along(api, acknowledged, keys, stop)) for _ in range(4)]
            try:
                await asyncio.sleep(LOAD_BEFORE_S)
                delayed = (await raw.info("persistence"))["aof_delayed_fsync"]  # writes Redis held back so far
                crashed_at = time.monotonic()
                await crash(server)
                await asyncio.sleep(0.5)  # starts go on against the Redis that came back
            finally:
                stop.set()
                await asyncio.gather(*starters)
            final = await _drive_to_the_end(api, sorted(acknowledged.starts), within_s=30)
            loss = await _audit(api, raw, configured.prefix, acknowledged, final)
    finally:
        await redis.aclose()
        await raw.aclose()
    print(
        f"\nappendfsync {fsync}, {crash.__name__}: acknowledged {len(acknowledged.starts)} starts, "
        f"{len(acknowledged.checkpoints)} checkpoints, {sum(len(c[1]) for c in acknowledged.checkpoints)} log entries; "
        f"lost {len(loss.starts)} starts, {len(loss.keys)} idempotency keys, {len(loss.checkpoints)} checkpoints, "
        f"{loss.entries} log entries; {len(loss.completed_twice)} completed twice, {len(loss.not_ended)} not ended; "
        f"AOF writes held back by a slow fsync before the crash: {delayed}"
    )
    return acknowledged, loss, crashed_at


async def kill_9(server: RedisServer) -> None:
    server.kill()
    await asyncio.sleep(DOWN_S)
    await server.astart()


async def clean_restart(server: RedisServer) -> None:
    await server.astop()
    await asyncio.sleep(DOWN_S)
    await server.astart()


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("crash", [kill_9, clean_restart])
@pytest.mark.parametrize("fsync", ["always", "everysec"])
async def test_what_a_redis_restart_under_load_loses(
    redis_server_factory: RedisServerFactory,
    settings: Settings,
    fsync: str,
    crash: Callable[[RedisServer], Awaitable[None]],
) -> None:
    acknowledged, loss, crashed_at = await _run(redis_server_factory("--appendfsync", fsync), settings, fsync, crash)

    assert len(acknowledged.starts) >= 10 and len(acknowledged.checkpoints) >= 300, "too little load to show anything"
    assert loss.not_ended == [], "an execution was left running with nobody to drive it"
    assert loss.completed_twice == [], loss.completed_twice
    if fsync == "always" or crash is clean_restart:
        assert (loss.starts, loss.keys, loss.checkpoints, loss.entries) == ([], [], [], 0)
    else:  # everysec and a crash: only what was acknowledged in the last seconds before it may be gone
        assert all(crashed_at - when <= EVERYSEC_BOUND_S for when in loss.checkpoints), loss.checkpoints
        assert all(crashed_at - acknowledged.starts[i][1] <= EVERYSEC_BOUND_S for i in loss.starts), loss.starts
