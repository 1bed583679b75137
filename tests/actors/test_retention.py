"""Retention: a finished execution and everything it owns leave Redis when its retention is over (the keys by
the expiry its final write set, the index entry and idempotency key by the sweeper); nothing of a running or
paused execution is touched."""

from __future__ import annotations

from redis.asyncio import Redis

from procengine.api.views import ControlRequest, StartRequest
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

QUICK = definition({"key": "a", "type": "set-variable", "set": {"x": "1"}}, key="quick")
WAITING = definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="waiting")


async def _keys_of(redis: Redis, prefix: str, execution_id: int) -> list[bytes]:
    """Every key of the execution's hash tag."""
    return [key async for key in redis.scan_iter(match=f"{prefix}:*{{{execution_id}}}*")]


async def _indexes_of(redis: Redis, prefix: str, execution_id: int) -> list[bytes]:
    """The tenant indexes (sorted sets) that hold the execution."""
    found = []
    async for key in redis.scan_iter(match=f"{prefix}:tenant:*:executions*"):
        if await redis.zscore(key, str(execution_id)) is not None:
            found.append(key)
    return found


async def test_a_finished_execution_leaves_redis_after_its_retention_and_a_live_one_stays(
    make_engine: EngineFactory, redis: Redis, prefix: str
) -> None:
    # (long enough that a loaded machine still reads the completed one before it expires)
    engine = await make_engine(retention="1500ms", sweep_interval_ms=100)
    summary, _ = await engine.register_process(CALLER, QUICK)
    finished, _ = await engine.start_execution(CALLER, StartRequest(processID=summary.processID, idempotencyKey="k-1"))
    cancelled = await start(engine, WAITING)
    paused = await start(engine, WAITING)
    running = await start(engine, WAITING)
    await wait_element(engine, paused, "w")
    await engine.pause(CALLER, paused, ControlRequest())
    await engine.cancel(CALLER, cancelled, ControlRequest())
    assert await wait_status(engine, finished.executionID, "completed") == "completed"
    ttl = await redis.pttl(engine.keys.execution(finished.executionID).execution)
    assert 0 < ttl <= 1500  # set by the final write itself

    gone = [finished.executionID, cancelled]

    async def listed_keys_indexed() -> tuple[set[int], list[list[bytes]], list[list[bytes]]]:
        listed = await engine.list_executions(CALLER, status=None, process_id=None, limit=100, cursor=None)
        keys = [await _keys_of(redis, prefix, execution_id) for execution_id in gone]
        indexed = [await _indexes_of(redis, prefix, execution_id) for execution_id in gone]
        return {item.executionID for item in listed.items}, keys, indexed

    # the keys expire by Redis's clock (their TTL, real time); the sweeper runs every 100 ms
    ids, _, _ = await poll(
        listed_keys_indexed,
        lambda found: not found[0] & set(gone) and not any(found[1]) and not any(found[2]),
        every=0.05,
    )

    assert await redis.exists(engine.keys.idempotency("default", "k-1")) == 0
    assert await redis.zscore(engine.keys.executions("default"), str(finished.executionID)) is None
    assert await redis.zcard(engine.keys.removals("default")) == 0
    for live in (paused, running):  # untouched: all their keys, no expiry, still listed
        assert len(await _keys_of(redis, prefix, live)) >= 4
        assert len(await _indexes_of(redis, prefix, live)) == 5  # all, status, process, process+status, started
        assert await redis.pttl(engine.keys.execution(live).execution) == -1
        assert live in ids
    assert (await engine.status(CALLER, paused)).status == "paused"


async def test_a_tenant_can_keep_its_executions_longer(make_engine: EngineFactory, redis: Redis) -> None:
    engine = await make_engine(retention="1s", retention_for={"default": "2d"})
    execution_id = await start(engine, QUICK)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    ttl = await redis.pttl(engine.keys.execution(execution_id).execution)
    assert 86_400_000 < ttl <= 2 * 86_400_000
