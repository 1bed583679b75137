"""A task's output is stored once in the memory snapshot, not as its node output and its output variable both: two
400 KB outputs fit a 1 MiB `--max-snapshot-bytes`. What the state answer shows (the seed's memory shape) is as
before: the output in both places. A snapshot written before (the output in both places) still loads."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.node.node import Node
from procengine.store.codec import decode, encode
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

MIB = 1_048_576
BIG = 400_000

TWO_OUTPUTS = definition(
    {"key": "first", "type": "task", "handler": "big", "input": {"c": "'a'"}, "output": "a", "next": "second"},
    {"key": "second", "type": "task", "handler": "big", "input": {"c": "'b'"}, "output": "b", "next": "wait"},
    {"key": "wait", "type": "wait-signal", "signal": "go", "next": "done"},
    {"key": "done", "type": "end"},
    key="two-outputs",
)


async def big(task_input: dict[str, Any]) -> dict[str, str]:
    return {"text": task_input["c"] * BIG}


async def _at_wait_or_failed(engine: Node, execution_id: int) -> bool:
    if (await engine.status(CALLER, execution_id)).status == "failed":
        return True
    return any(e.key == "wait" and e.status == "running" for e in (await engine.elements(CALLER, execution_id)).items)


async def _memory_bytes(redis: Redis, engine: Node, execution_id: int) -> bytes:
    blob: bytes = await redis.hget(engine.keys.execution(execution_id).state, "memory")
    return blob


async def test_two_400_kb_outputs_fit_a_1_mib_snapshot(make_engine: EngineFactory, redis: Redis) -> None:
    engine = await make_engine(max_snapshot_bytes=MIB)
    engine.ctx.handlers.register("big", big)
    execution_id = await start(engine, TWO_OUTPUTS)

    await poll(lambda: _at_wait_or_failed(engine, execution_id))
    status = await engine.status(CALLER, execution_id)
    assert status.status == "running", status.error

    blob = await _memory_bytes(redis, engine, execution_id)
    assert BIG * 2 < len(blob) < BIG * 2 + 1000  # each output once
    state = await engine.state(CALLER, execution_id)
    assert state.memory is not None
    memory = state.memory
    for key, name, char in (("first", "a", "a"), ("second", "b", "b")):  # the seed's shape: in both places
        assert memory["variables"][name] == {"text": char * BIG}
        assert memory["node_outputs"][key] == {"status": "success", "data": {"text": char * BIG}}

    # paused and resumed from what Redis holds: the state read back has both places again
    await engine.pause(CALLER, execution_id, ControlRequest())
    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", None)
    assert await wait_status(engine, execution_id, "completed") == "completed"
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None and memory["node_outputs"]["second"]["data"] == memory["variables"]["b"]


async def test_a_snapshot_written_before_with_outputs_twice_still_loads(
    make_engine: EngineFactory, redis: Redis
) -> None:
    engine = await make_engine()
    process = definition(
        {"key": "t", "type": "task", "handler": "echo", "input": {"x": "'y'"}, "output": "o", "next": "w"},
        {"key": "w", "type": "wait-signal", "signal": "go", "next": "done"},
        {"key": "done", "type": "end"},
    )
    execution_id = await start(engine, process)
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    # the memory snapshot as versions before wrote it: the output in its variable and in its node output
    key = engine.keys.execution(execution_id).state
    memory = decode(await redis.hget(key, "memory"))
    memory["variables"]["o"] = {"x": "y" * 100}
    memory["node_outputs"]["t"] = {"status": "success", "data": {"x": "y" * 100}}
    await redis.hset(key, "memory", encode(memory))

    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", None)

    assert await wait_status(engine, execution_id, "completed") == "completed"
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None
    assert memory["node_outputs"]["t"] == {"status": "success", "data": {"x": "y" * 100}}
    assert memory["variables"]["o"] == {"x": "y" * 100}
