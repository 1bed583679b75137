"""The Redis key layout operators rely on (docs/redis-keys.md): exact names, types and fields."""

from __future__ import annotations

from redis.asyncio import Redis

from procengine.actors.engine import Engine
from procengine.store.codec import decode
from procengine.views import ControlRequest
from tests.actors.conftest import CALLER, definition, start, wait_element


async def test_a_paused_execution_writes_exactly_the_documented_keys(engine: Engine, redis: Redis, prefix: str) -> None:
    execution_id = await start(
        engine,
        definition({"key": "w", "type": "wait-signal", "signal": "s"}),
        {"order_id": "A-1"},
    )
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())

    keys = sorted([k.decode() async for k in redis.scan_iter(match=f"{prefix}:*")])
    node = f"{prefix}:node:{engine.node_id}"
    assert keys == sorted(
        [
            f"{prefix}:active",
            f"{prefix}:exec:{{1}}",
            f"{prefix}:exec:{{1}}:elements",
            f"{prefix}:exec:{{1}}:log",
            f"{prefix}:exec:{{1}}:state",
            f"{prefix}:exec:{{1}}:threads",
            node,
            f"{prefix}:seq:execution",
            f"{prefix}:seq:process",
            f"{prefix}:seq:thread",
            f"{prefix}:statuses",
            f"{prefix}:tenant:{{default}}:executions",
            f"{prefix}:tenant:{{default}}:process-key:p",
            f"{prefix}:tenant:{{default}}:process:1",
            f"{prefix}:tenant:{{default}}:processes",
        ]
    )
    execution = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{prefix}:exec:{{1}}")).items()}
    assert {"status", "processID", "processVersion", "tenant", "startedAt", "stoppedAt", "owner", "epoch"} <= set(
        execution
    )
    assert (execution["status"], execution["tenant"], execution["owner"]) == ("paused", "default", engine.node_id)
    assert await redis.type(f"{prefix}:exec:{{1}}:log") == b"stream"
    state = await redis.hgetall(f"{prefix}:exec:{{1}}:state")
    assert set(state) == {b"stack", b"memory", b"savedAt", b"active", b"format"}
    stack = decode(state[b"stack"])
    assert set(stack) >= {"execution_stack", "paused_at_node", "saved_at", "stack_depth"}
    assert stack["execution_stack"][0]["element_key"] == "w" and stack["stack_depth"] == 1
    memory = decode(state[b"memory"])
    assert memory["variables"] == {"order_id": "A-1"} and memory["variable_count"] == 1
    assert set(memory) >= {"variables", "node_outputs", "saved_at", "variable_count"}
    assert await redis.hget(f"{prefix}:statuses", "paused") == b"2"
