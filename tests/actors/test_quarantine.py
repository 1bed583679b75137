"""The crash quarantine: an execution in whose middle `node_crash_limit` nodes in a row stopped, with no progress in
between, is failed (NodeCrashed) instead of adopted again; an execution that merely waits while nodes stop, and a
paused one, never adds up to it. Nodes are stopped here as kill -9 looks to the others (no write, heartbeat gone);
tests/test_quarantine_kill.py does it with real processes."""

from __future__ import annotations

import asyncio
import functools

import pytest
from redis.asyncio import Redis

from procengine.api.views import ControlRequest
from procengine.errors import ValidationFailed
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, Gate, events, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

WORK = definition(
    {"key": "before", "type": "set-variable", "set": {"a": "1"}, "next": "work"},
    {"key": "work", "type": "task", "handler": "gate", "next": "e"},
    {"key": "e", "type": "end"},
    key="poison",
)


async def kill(engine: Node, redis: Redis) -> None:
    """Stop a node as kill -9 would, and let its heartbeat lapse at once (no waiting for the TTL)."""
    for task in engine._background:
        task.cancel()
    await asyncio.gather(*engine._background, return_exceptions=True)
    engine._background = []
    await engine.registry.stop_all()
    await redis.delete(engine.keys.node(engine.node_id))


async def crashes(engine: Node, execution_id: int) -> str:
    return (await engine.store.fields(execution_id)).get("crashes", "")


async def test_an_execution_whose_task_stops_every_node_is_failed_after_the_limit(
    make_engine: EngineFactory, redis: Redis, gate: Gate
) -> None:
    # given an execution whose task is under way whenever its node stops: the node that started it, then two
    # nodes that adopted it (the limit is 3)
    node = await make_engine()
    execution_id = await start(node, WORK)
    for adoptions in (1, 2):
        await gate.entered.wait()
        gate.entered.clear()
        await kill(node, redis)
        node = await make_engine()
        await gate.entered.wait()  # adopted: the task runs again
        assert await crashes(node, execution_id) == str(adoptions)
    await kill(node, redis)

    # when a fourth node finds it: it is failed, not run a fourth time
    survivor = await make_engine()
    assert await wait_status(survivor, execution_id, "failed") == "failed"

    assert gate.calls == 3
    status = await survivor.status(CALLER, execution_id)
    assert status.error is not None and status.error["type"] == "NodeCrashed"
    assert status.error["element"] == "work"
    assert "3 nodes in a row stopped while it ran" in status.error["error"]
    log = (await survivor.log(CALLER, execution_id)).items
    failed = [entry for entry in log if entry.event == "failed"]
    assert len(failed) == 1 and failed[0].detail["type"] == "NodeCrashed"
    assert [entry.event for entry in log].count("adopted") == 3
    records = {e.key: e for e in (await survivor.elements(CALLER, execution_id)).items}
    assert (records["work"].status, records["work"].errorType) == ("failed", "NodeCrashed")
    # moved between the indexes like any failure
    listed = await survivor.list_executions(CALLER, status="failed", process_id=None, limit=10, cursor=None)
    assert execution_id in [item.executionID for item in listed.items]
    running = await survivor.list_executions(CALLER, status="running", process_id=None, limit=10, cursor=None)
    assert execution_id not in [item.executionID for item in running.items]

    # and the survivor goes on serving
    other = await start(survivor, definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="fine"))
    await wait_element(survivor, other, "w")
    await survivor.signal(CALLER, other, "s", 1)
    assert await wait_status(survivor, other, "completed") == "completed"


async def test_one_crash_is_no_quarantine_and_progress_clears_the_count(
    make_engine: EngineFactory, redis: Redis, gate: Gate
) -> None:
    first = await make_engine(node_crash_limit=2)
    execution_id = await start(first, WORK)
    await gate.entered.wait()
    gate.entered.clear()
    await kill(first, redis)

    second = await make_engine(node_crash_limit=2)
    await gate.entered.wait()
    assert await crashes(second, execution_id) == "1"
    gate.release.set()

    assert await wait_status(second, execution_id, "completed") == "completed"
    assert await crashes(second, execution_id) == "0"  # the task's completion was progress


async def test_a_waiting_execution_outlives_any_number_of_node_crashes(
    make_engine: EngineFactory, redis: Redis
) -> None:
    # nodes that stop while an execution waits for a signal (or a timer) did not stop because of it: once every
    # lane of the adopted execution waits, the count goes back to 0
    waiting = definition({"key": "w", "type": "wait-signal", "signal": "s", "next": "e"}, {"key": "e", "type": "end"})
    node = await make_engine()
    execution_id = await start(node, waiting)
    await wait_element(node, execution_id, "w")
    for _ in range(4):  # more than the limit of 3
        await kill(node, redis)
        node = await make_engine()
        # Redis state written by another task: polled (there is no event to await across the store)
        await poll(functools.partial(owned_and_forgiven, node, execution_id), within=5)

    await node.signal(CALLER, execution_id, "s", 1)
    assert await wait_status(node, execution_id, "completed") == "completed"
    assert [event for event, _ in await events(node, execution_id)].count("adopted") == 4


async def owned_and_forgiven(engine: Node, execution_id: int) -> bool:
    fields = await engine.store.fields(execution_id)
    return fields.get("owner") == engine.node_id and fields.get("crashes") == "0"


async def test_a_paused_execution_moved_between_nodes_is_not_counted(make_engine: EngineFactory, redis: Redis) -> None:
    node = await make_engine()
    execution_id = await start(node, WORK)
    await wait_element(node, execution_id, "work")
    await node.pause(CALLER, execution_id, ControlRequest())
    for _ in range(4):
        await kill(node, redis)
        node = await make_engine()
        # a request activates it here (a paused execution is not adopted): a signal it cannot take will do (422)
        with pytest.raises(ValidationFailed, match="cannot take signal 'x'"):
            await node.signal(CALLER, execution_id, "x", 1)
        assert (await node.store.fields(execution_id))["owner"] == node.node_id
    assert await crashes(node, execution_id) in ("", "0")
    await node.resume(CALLER, execution_id, ControlRequest())
    assert await wait_status(node, execution_id, "running") == "running"
