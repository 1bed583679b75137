"""Redis failing under a running actor: a checkpoint whose write fails, keys edited by hand, blobs corrupted."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError

from procengine.node.node import Node
from procengine.store.executions import Commit, WriteResult
from procengine.tasks import HandlerRegistry
from tests.support.nodes import CALLER, Gate, child_of, events, start, wait_status
from tests.support.polling import until
from tests.support.processes import KYC, definition, parent


async def test_a_failed_checkpoint_is_not_carried_on_by_a_lane_that_waited_for_it(engine: Node, gate: Gate) -> None:
    """Two lanes end their tasks together: the first one's checkpoint fails (Redis went away: its outcome is
    unknown) while the second waits to write. The second must not write the state the first changed without the
    first's log entries: the actor stops, its node takes the execution back from Redis, and the log shows every
    element completed exactly once."""
    process = definition(threads=[_gated_thread("a"), _gated_thread("b")])
    commit = engine.store.commit
    failed = asyncio.Event()

    async def fails_once_the_other_lane_waits(execution_id: int, change: Commit, **kwargs: Any) -> WriteResult:
        completes = any(e.event == "element-completed" for e in change.log)
        actor = engine.registry.get(execution_id)
        if not completes or failed.is_set() or actor is None:
            return await commit(execution_id, change, **kwargs)
        asked = actor._checkpoints_asked
        # until the other lane has queued its events and waits for us (no event tells)
        await until(lambda: actor._checkpoints_asked > asked, within=5, every=0.001)
        failed.set()
        raise ConnectionError("Redis went away during the write")

    engine.store.commit = fails_once_the_other_lane_waits  # type: ignore[method-assign]
    execution_id = await start(engine, process)
    await gate.entered.wait()
    gate.release.set()

    assert await wait_status(engine, execution_id, "completed", "failed") == "completed"
    assert failed.is_set()
    completed = Counter(key for event, key in await events(engine, execution_id) if event == "element-completed")
    assert completed == {"a_work": 1, "a_end": 1, "b_work": 1, "b_end": 1}


async def test_a_child_whose_status_was_edited_by_hand_fails_the_call_and_not_the_parent(
    engine: Node, gate: Gate, redis: Redis
) -> None:
    """The parent reads how its child ended; a status it does not know used to raise in the parent's lane, and the
    parent, taken back by its node, raised again at every reconcile pass: a crash loop."""
    await engine.register_process(CALLER, KYC)
    parent_id = await start(engine, parent(), {"order": {"customer": "ada"}})
    child_id = await child_of(engine, parent_id)

    await redis.hset(engine.keys.execution(child_id).execution, "status", "runing")
    gate.release.set()  # the child's actor finds the status changed under it at its next write, and stops

    assert await wait_status(engine, parent_id, "completed", "failed") == "failed"
    error = (await engine.status(CALLER, parent_id)).error
    assert error is not None and error["type"] == "ChildFailed" and "'runing'" in error["error"], error


async def test_an_actor_spawned_while_the_watchdog_stops_the_others_stays_registered(
    engine: Node, handlers: HandlerRegistry
) -> None:
    """The watchdog's stop_all waits for the actors it cancelled; a start (or a take-back) meanwhile spawns a new
    one. stop_all used to clear the whole registry afterwards: the new actor ran on unregistered, its node took its
    execution back as undriven, and two actors drove one execution until the older one was fenced."""
    slow_to_stop = asyncio.Event()
    letting_go = asyncio.Event()

    async def lingers(task_input: dict[str, Any]) -> str:
        slow_to_stop.set()
        try:
            await asyncio.sleep(30)
        finally:
            letting_go.set()
            await asyncio.sleep(0.3)  # a handler that takes a while to let go once cancelled
        return "never"

    handlers.register("lingers", lingers)
    await start(engine, definition({"key": "t", "type": "task", "handler": "lingers"}, key="slow"))
    await slow_to_stop.wait()
    stopping = asyncio.create_task(engine.registry.stop_all())
    await letting_go.wait()  # stop_all cancelled the actor and waits for it to let go

    spawned = await start(engine, definition({"key": "w", "type": "wait-signal", "signal": "s"}, key="waits"))
    await stopping

    actor = engine.registry.get(spawned)
    assert actor is not None and not actor.stopped.is_set()


def _gated_thread(name: str) -> dict[str, Any]:
    """A thread of a `gate` task (`<name>_work`) and its end (`<name>_end`)."""
    return {
        "key": name,
        "elements": [
            {"key": f"{name}_work", "type": "task", "handler": "gate", "next": f"{name}_end"},
            {"key": f"{name}_end", "type": "end"},
        ],
    }
