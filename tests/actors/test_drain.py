"""Graceful shutdown: a draining node takes no new work, lets running tasks finish within the grace,
checkpoints, and leaves; the other nodes adopt its executions at once, not after its heartbeat's TTL."""

from __future__ import annotations

import asyncio

import pytest

from procengine.api.views import ControlRequest, StartRequest
from procengine.errors import Unavailable
from procengine.node.node import Node
from tests.support.nodes import CALLER, EngineFactory, Gate, events, start, wait_element, wait_status
from tests.support.polling import poll
from tests.support.processes import definition

END = {"key": "e", "type": "end"}
# only the nodes channel can make these nodes adopt quickly: their heartbeats outlive the test, and they
# reconcile once a minute
SLOW_TO_NOTICE = {"node_ttl_ms": 30_000, "reconcile_interval_ms": 60_000}


async def _owner(engine: Node, execution_id: int) -> str:
    return (await engine.store.fields(execution_id))["owner"]


async def _until_owned_by(engine: Node, execution_id: int) -> None:
    # polled: what the owner field says is the point
    await poll(lambda: _owner(engine, execution_id), lambda owner: owner == engine.node_id)


async def test_a_draining_node_finishes_its_tasks_and_another_adopts_at_once(
    make_engine: EngineFactory, gate: Gate
) -> None:
    a = await make_engine(**SLOW_TO_NOTICE, pause_grace_ms=5_000)
    b = await make_engine(**SLOW_TO_NOTICE)
    await b.control.subscribed.wait()
    working = await start(a, definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, END))
    waiting = await start(a, definition({"key": "w", "type": "wait-signal", "signal": "go", "next": "e"}, END))
    napping = await start(a, definition({"key": "nap", "type": "delay", "durationMs": 400, "next": "e"}, END))
    await gate.entered.wait()
    await wait_element(a, waiting, "w")

    parked = a.registry.get(waiting)
    assert parked is not None
    drain = asyncio.create_task(a.drain())
    await asyncio.sleep(0)  # let the drain begin: it refuses new work before its first await
    # while it drains: no new work, not ready
    with pytest.raises(Unavailable) as refused:
        await a.signal(CALLER, waiting, "go", 1)
    assert refused.value.retry_after_s == 1 and "shutting down" in refused.value.message
    with pytest.raises(Unavailable):
        await a.start_execution(CALLER, StartRequest(processKey="p"))
    assert await a.ready() == "this node is shutting down"
    # the running task finishes within the grace, on A, once the drain has asked every actor to stop (it stops the
    # schedule loop and the bulk runners first: a task that ended before then would go on to the end, on A)
    await parked.stopped.wait()
    gate.release.set()
    await drain

    # B adopts all three at once, and they go on there
    for execution_id in (working, waiting, napping):
        await _until_owned_by(b, execution_id)
    await b.signal(CALLER, waiting, "go", 1)
    for execution_id in (working, waiting, napping):
        assert await wait_status(b, execution_id, "completed") == "completed"
    assert gate.calls == 1
    log = (await b.log(CALLER, working)).items
    assert [e.event for e in log].count("element-completed") == 2
    adopted = [e for e in log if e.event == "adopted"]
    assert [(e.detail["from"], e.detail["to"]) for e in adopted] == [(a.node_id, b.node_id)]


async def test_a_task_longer_than_the_grace_is_cut_short_and_runs_again_on_the_adopter(
    make_engine: EngineFactory, gate: Gate
) -> None:
    a = await make_engine(**SLOW_TO_NOTICE, pause_grace_ms=100)
    b = await make_engine(**SLOW_TO_NOTICE)
    await b.control.subscribed.wait()
    execution_id = await start(a, definition({"key": "work", "type": "task", "handler": "gate", "next": "e"}, END))
    await gate.entered.wait()

    await a.drain()

    [record] = (await a.elements(CALLER, execution_id)).items
    assert record.status == "interrupted"
    await _until_owned_by(b, execution_id)
    gate.release.set()
    assert await wait_status(b, execution_id, "completed") == "completed"
    starts = [e.detail for e in (await b.log(CALLER, execution_id)).items if e.event == "element-started"]
    assert [detail.get("rerun") for detail in starts] == [None, True]


async def test_paused_executions_stay_paused_and_answer_on_the_other_node(make_engine: EngineFactory) -> None:
    a = await make_engine(**SLOW_TO_NOTICE)
    b = await make_engine(**SLOW_TO_NOTICE)
    execution_id = await start(a, definition({"key": "w", "type": "wait-signal", "signal": "go", "next": "e"}, END))
    await wait_element(a, execution_id, "w")
    await a.pause(CALLER, execution_id, ControlRequest())

    await a.drain()

    assert (await b.status(CALLER, execution_id)).status == "paused"
    await b.resume(CALLER, execution_id, ControlRequest())  # A's heartbeat is gone: B takes it on request
    await b.signal(CALLER, execution_id, "go", 1)
    assert await wait_status(b, execution_id, "completed") == "completed"
    assert "adopted" in [event for event, _ in await events(b, execution_id)]


async def test_a_forwarded_request_to_a_draining_node_is_a_quick_503(make_engine: EngineFactory) -> None:
    a = await make_engine(**SLOW_TO_NOTICE)
    b = await make_engine(**SLOW_TO_NOTICE)
    await asyncio.gather(a.router.serving.wait(), b.router.serving.wait())
    execution_id = await start(a, definition({"key": "w", "type": "wait-signal", "signal": "go", "next": "e"}, END))
    await wait_element(a, execution_id, "w")
    a._draining = True  # as drain() sets it first, before the actors stop

    with pytest.raises(Unavailable) as refused:
        async with asyncio.timeout(2):  # the owner answers at once; it does not let the requester wait it out
            await b.pause(CALLER, execution_id, ControlRequest())
    assert "shutting down" in refused.value.message
