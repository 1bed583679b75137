"""The Redis key layout operators rely on (docs/redis-keys.md): exact names, types and fields."""

from __future__ import annotations

import logging

import msgpack
import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.node.node import Node
from procengine.runtime.clock import iso
from procengine.settings import Settings
from procengine.store.codec import decode
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, EngineFactory, start, wait_element
from tests.support.processes import definition


async def test_a_paused_execution_writes_exactly_the_documented_keys(
    make_engine: EngineFactory, redis: Redis, prefix: str
) -> None:
    engine = await make_engine(passivate_after_ms=600_000)  # its actor keeps `owner` while the keys are read
    execution_id = await start(
        engine,
        definition({"key": "w", "type": "wait-signal", "signal": "s"}),
        {"order_id": "A-1"},
    )
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())

    found = sorted([k.decode() async for k in redis.scan_iter(match=f"{prefix}:*")])
    counters = [key for key in found if key.startswith(f"{prefix}:tenant:{{default}}:starts:")]
    assert 1 <= len(counters) <= 2  # the start rate's counter of the second the start fell in (it expires)
    keys = [key for key in found if key not in counters]
    node = f"{prefix}:node:{engine.node_id}"
    assert keys == sorted(
        [
            f"{prefix}:active",
            f"{prefix}:exec:{{1}}",
            f"{prefix}:exec:{{1}}:elements",
            f"{prefix}:exec:{{1}}:history",
            f"{prefix}:exec:{{1}}:log",
            f"{prefix}:exec:{{1}}:state",
            f"{prefix}:exec:{{1}}:threads",
            f"{prefix}:migrated:owned",
            node,
            f"{prefix}:node:{{{engine.node_id}}}:owned",
            f"{prefix}:nodes:known",
            f"{prefix}:seq:execution",
            f"{prefix}:seq:process",
            f"{prefix}:seq:thread",
            f"{prefix}:statuses",
            f"{prefix}:store-id",
            f"{prefix}:tenant:{{default}}:executions",
            f"{prefix}:tenant:{{default}}:executions:process:1",
            f"{prefix}:tenant:{{default}}:executions:process:1:status:paused",
            f"{prefix}:tenant:{{default}}:executions:started",
            f"{prefix}:tenant:{{default}}:executions:status:paused",
            f"{prefix}:tenant:{{default}}:process-key:p",
            f"{prefix}:tenant:{{default}}:process:1",
            f"{prefix}:tenant:{{default}}:processes",
            f"{prefix}:tenant:{{default}}:status-events",
        ]
    )
    execution = {k.decode(): v.decode() for k, v in (await redis.hgetall(f"{prefix}:exec:{{1}}")).items()}
    assert {"status", "processID", "processVersion", "tenant", "startedAt", "stoppedAt", "owner", "epoch"} <= set(
        execution
    )
    assert (execution["status"], execution["tenant"], execution["owner"]) == ("paused", "default", engine.node_id)
    assert "failedNodes" not in execution  # the thread records' sum
    assert await redis.type(f"{prefix}:exec:{{1}}:log") == b"stream"
    entries = await redis.xrange(f"{prefix}:exec:{{1}}:log")
    assert [set(fields) for _, fields in entries] == [{b"at", b"event", b"elementKey", b"detail"}] * len(entries)
    paused = decode(entries[-1][1][b"detail"])  # its detail's frequent names short (store/stored_records.py)
    assert (entries[-1][1][b"event"], paused["f"], paused["t"], paused["b"]) == (
        b"paused",
        "running",
        "paused",
        "default",
    )
    state = await redis.hgetall(f"{prefix}:exec:{{1}}:state")
    assert set(state) == {b"stack", b"memory", b"savedAt", b"active"}
    # the seed's shapes, every seed field there; our own fields left out at their default (engine/stored.py)
    stack = decode(state[b"stack"])
    assert set(stack) == {"execution_stack", "paused_at_node", "saved_at", "stack_depth", "next_order"}
    [entry] = stack["execution_stack"]
    assert (entry["element_key"], entry["element_type"], entry["thread_key"], stack["stack_depth"]) == (
        "w",
        "wait-signal",
        "main",
        1,
    )
    assert {"element_id", "execution_order", "started_at_ms"} <= set(entry) and "path" not in entry
    memory = decode(state[b"memory"])
    assert memory["variables"] == {"order_id": "A-1"} and memory["variable_count"] == 1
    assert set(memory) == {"variables", "node_outputs", "saved_at", "variable_count"}  # no empty signals
    # element and thread records: short names, times in epoch ms, nothing their field already says
    record = decode(await redis.hget(f"{prefix}:exec:{{1}}:elements", "w"))
    assert record == {"t": "wait-signal", "h": "main", "s": entry["started_at_ms"], "st": "running"}
    thread = decode(await redis.hget(f"{prefix}:exec:{{1}}:threads", "main"))
    assert set(thread) == {"i", "p", "n", "c", "st"} and thread["st"] == "running"
    # the checkpoint history: one entry per checkpoint written, the last one the pause's, with the state's blobs
    head, *history = await redis.lrange(f"{prefix}:exec:{{1}}:history", 0, -1)
    assert await redis.type(f"{prefix}:exec:{{1}}:history") == b"list"
    assert msgpack.unpackb(head) == [len(history), sum(len(entry) for entry in history)]  # its counters, first
    last = msgpack.unpackb(history[-1], raw=True)
    assert last[0] == len(history) and last[3:5] == [state[b"stack"], state[b"memory"]]
    assert await redis.hget(f"{prefix}:statuses", "paused") == b"2"


async def test_a_passivated_log_is_kept_at_its_exact_size(engine: Node, redis: Redis, prefix: str) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    await engine.pause(CALLER, execution_id, ControlRequest())
    log_key = f"{prefix}:exec:{{{execution_id}}}:log"
    entries = await redis.xrange(log_key)
    # XADD gave the stream's node 4 KiB up front (stream-node-max-bytes), most of it empty
    assert await redis.memory_usage(log_key, samples=0) > 4096
    actor = engine.registry.get(execution_id)
    assert actor is not None
    await actor.stopped.wait()  # passivated (passivate_after_ms): owner released, log rewritten

    assert await redis.hget(f"{prefix}:exec:{{{execution_id}}}", "owner") == b""
    assert await redis.xrange(log_key) == entries
    assert await redis.memory_usage(log_key, samples=0) < 1500
    # and the embedded server keeps an execution's hashes compact (hash-max-ziplist-value)
    for suffix in ("", ":state", ":elements", ":threads"):
        assert await redis.object("encoding", f"{prefix}:exec:{{{execution_id}}}{suffix}") == b"ziplist"


async def test_log_times_are_stored_as_epoch_ms_and_read_as_iso(engine: Node, redis: Redis, prefix: str) -> None:
    execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
    await wait_element(engine, execution_id, "w")
    log_key = f"{prefix}:exec:{{{execution_id}}}:log"
    stored = [fields[b"at"] for _, fields in await redis.xrange(log_key)]
    assert all(at.isdigit() for at in stored)
    # an entry written by an older version, with an ISO time, reads the same way
    await redis.xadd(log_key, {"at": "2026-11-29T04:50:52.353Z", "event": "note", "elementKey": "", "detail": b""})

    items = (await engine.log(CALLER, execution_id)).items
    assert items[-1].at == "2026-11-29T04:50:52.353Z"
    assert [item.at for item in items[:-1]] == [iso(int(at)) for at in stored]


async def test_passivation_where_the_acl_denies_dump_and_restore_still_releases(
    redis: Redis, settings: Settings, handlers: HandlerRegistry, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = f"no-dangerous-{prefix}"
    await redis.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-@dangerous")
    assert settings.redis_url is not None
    client = Redis.from_url(settings.redis_url.replace("redis://", f"redis://{user}:pw@"))
    try:
        async with Node(client, settings, handlers) as engine:
            execution_id = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}))
            await wait_element(engine, execution_id, "w")
            await engine.pause(CALLER, execution_id, ControlRequest())
            log_key = f"{prefix}:exec:{{{execution_id}}}:log"
            entries = await redis.xrange(log_key)
            actor = engine.registry.get(execution_id)
            assert actor is not None
            with caplog.at_level(logging.ERROR, logger="procengine"):
                await actor.stopped.wait()  # passivated

            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
            assert await redis.hget(f"{prefix}:exec:{{{execution_id}}}", "owner") == b""
            assert await redis.xrange(log_key) == entries
            assert await redis.memory_usage(log_key, samples=0) > 4096  # not rewritten: the ACL said no
            await engine.resume(CALLER, execution_id, ControlRequest())  # and it comes back as ever
            assert (await engine.status(CALLER, execution_id)).status == "running"
    finally:
        await client.aclose()
        await redis.execute_command("ACL", "DELUSER", user)
