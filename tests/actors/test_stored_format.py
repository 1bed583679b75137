"""Stored without what can be derived or what holds its default (issue 21): the stack and memory snapshots (our own
fields at their default), the element and thread records (short names, ms times), the execution hash (no node
counts). The answers show the same shapes as before, and an execution written by a version before (every field
written out, `format` 1, records with their documented names and ISO times, node counts in the hash) still loads
and runs on."""

from __future__ import annotations

from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.store.codec import decode, encode
from tests.support.nodes import CALLER, EngineFactory, start, wait_element, wait_status
from tests.support.processes import definition

PROCESS = definition(
    {"key": "init", "type": "set-variable", "set": {"total": "599.99", "ok": "true"}, "next": "w"},
    {"key": "w", "type": "wait-signal", "signal": "go", "into": "approval", "next": "done"},
    {"key": "done", "type": "end"},
)


async def test_the_state_answer_keeps_the_seed_shapes(make_engine: EngineFactory) -> None:
    engine = await make_engine()
    execution_id = await start(engine, PROCESS, {"order_id": "A-1"})
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())

    state = await engine.state(CALLER, execution_id)
    assert state.stack is not None and state.memory is not None
    [entry] = state.stack["execution_stack"]
    assert entry["element_key"] == "w" and entry["element_type"] == "wait-signal" and entry["thread_key"] == "main"
    assert entry["path"] == "main" and entry["attempt"] == 1 and isinstance(entry["started_at_ms"], int)
    assert state.stack["saved_at"] == state.savedAt and state.stack["stack_depth"] == 1
    assert set(state.stack) == {"execution_stack", "paused_at_node", "saved_at", "stack_depth", "next_order"}
    assert state.memory == {
        "variables": {"order_id": "A-1", "total": 599.99, "ok": True},
        "node_outputs": {"init": {"status": "success"}},
        "saved_at": state.savedAt,
        "variable_count": 3,
        "signals": {},
    }


async def test_an_execution_written_in_the_format_before_loads_and_runs_on(
    make_engine: EngineFactory, redis: Redis
) -> None:
    engine = await make_engine(passivate_after_ms=50)
    execution_id = await start(engine, PROCESS, {"order_id": "A-1"})
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    actor = engine.registry.get(execution_id)
    assert actor is not None
    await actor.stopped.wait()  # passivated: the next request loads the execution from Redis
    key = engine.keys.execution(execution_id).state
    [now] = decode(await redis.hget(key, "stack"))["execution_stack"]
    saved_at = (await redis.hget(key, "savedAt")).decode()
    # the state hash as the engine before issue 21 wrote it: the seed's shapes, everything spelled out, `format` 1
    old_stack = {
        "execution_stack": [
            {
                "element_id": now["element_id"],
                "element_key": "w",
                "element_type": "wait-signal",
                "execution_order": now["execution_order"],
                "thread_key": "main",
                "path": "main",
                "attempt": 1,
                "started_at_ms": now["started_at_ms"],
            }
        ],
        "paused_at_node": now["element_id"],
        "saved_at": saved_at,
        "stack_depth": 1,
        "next_order": now["execution_order"] + 1,
    }
    old_memory = {
        "variables": {"order_id": "A-1", "total": 599.99, "ok": True},
        "node_outputs": {"init": {"status": "success"}},
        "saved_at": saved_at,
        "variable_count": 3,
        "signals": {},
    }
    await redis.hset(key, mapping={"stack": encode(old_stack), "memory": encode(old_memory), "format": "1"})
    [thread_id] = [
        decode(raw)["i"] for raw in (await redis.hgetall(engine.keys.execution(execution_id).threads)).values()
    ]
    old_thread = {
        "threadExecutionID": thread_id,
        "processThreadID": 1,
        "threadKey": "main",
        "totalNodes": 3,
        "completedNodes": 1,
        "failedNodes": 0,
        "status": "running",
    }
    old_records = {
        "init": {
            "key": "init",
            "type": "set-variable",
            "threadKey": "main",
            "attempts": 1,
            "startedAt": "2026-12-07T18:32:05.225Z",
            "status": "completed",
            "stoppedAt": "2026-12-07T18:32:05.225Z",
        },
        "w": {
            "key": "w",
            "type": "wait-signal",
            "threadKey": "main",
            "attempts": 1,
            "startedAt": "2026-12-07T18:32:05.226Z",
            "status": "running",
        },
    }
    keys = engine.keys.execution(execution_id)
    await redis.hset(keys.threads, "main", encode(old_thread))
    await redis.hset(keys.elements, mapping={name: encode(record) for name, record in old_records.items()})
    await redis.hset(keys.execution, mapping={"completedNodes": "1", "failedNodes": "0"})  # now read from the threads

    state = await engine.state(CALLER, execution_id)
    assert (state.stack, state.memory) == (old_stack, old_memory)
    status = await engine.status(CALLER, execution_id)
    assert status.status == "paused"
    elements = {item.key: item for item in (await engine.elements(CALLER, execution_id)).items}
    assert elements["init"].status == "completed" and elements["init"].startedAt == "2026-12-07T18:32:05.225Z"
    await engine.resume(CALLER, execution_id, ControlRequest())
    await engine.signal(CALLER, execution_id, "go", {"yes": 1})

    assert await wait_status(engine, execution_id, "completed") == "completed"
    memory = (await engine.state(CALLER, execution_id)).memory
    assert memory is not None
    assert memory["variables"] == {"order_id": "A-1", "total": 599.99, "ok": True, "approval": {"yes": 1}}
    assert memory["variable_count"] == 4
    elements = {item.key: item for item in (await engine.elements(CALLER, execution_id)).items}
    assert elements["init"].stoppedAt == "2026-12-07T18:32:05.225Z"  # the old record, read as it was
    assert elements["w"].status == "completed" and elements["done"].status == "completed"
    assert (await engine.status(CALLER, execution_id)).progress.completedNodes == 3


async def test_every_checkpoint_records_its_commit_token(make_engine: EngineFactory, redis: Redis) -> None:
    """commit.lua records `lastCommit` only with a write of execution fields: a checkpoint must write one, or a
    retried checkpoint would be applied twice and takeover.lua could not tell the state it loaded is the latest."""
    engine = await make_engine()
    execution_id = await start(engine, PROCESS)
    await wait_element(engine, execution_id, "w")
    actor = engine.registry.get(execution_id)
    assert actor is not None
    key = engine.keys.execution(execution_id).execution
    before = await redis.hget(key, "lastCommit")

    await actor.writer.checkpoint([])

    assert before is not None and await redis.hget(key, "lastCommit") not in (None, before)
